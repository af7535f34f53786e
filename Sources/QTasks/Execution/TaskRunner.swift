import Foundation
import Logging
import Tracing

/// Runs one delivery's task and says how it went, without any broker I/O:
/// the ``Worker`` settles the delivery from the ``TaskOutcome``.
///
/// Decodes the body and the handler's arguments in one `JSONDecoder` pass,
/// runs the handler with ``TaskContext/current`` set, and encodes what it
/// returned. Bad input never throws: it is a `.rejected` outcome whose
/// result's `traceback` is `"TaskInputError: <what is wrong>"`. When even
/// the uuid or the task name cannot be read, the result's `uuid` is the
/// message's `message_id` (else a new UUID) and its `task_name` is `""`.
public struct TaskRunner: Sendable {
    /// Bodies larger than this are rejected unread, in bytes.
    public let maxMessageBytes: Int
    /// The longest one task may run; nil for no limit. A task's
    /// own ``TaskOptions/timeLimit`` wins.
    public let taskTimeLimit: Duration?
    /// The retry policy of tasks registered without one of their own.
    public let retryPolicy: RetryPolicy
    /// How transient infrastructure errors are retried, for tasks without
    /// a ``TaskOptions/transientRetry`` of their own.
    public let transientRetryPolicy: TransientRetryPolicy
    private let catalog: TaskCatalog
    private let decoder: JSONDecoder
    private let logger: Logger
    /// The worker scope of ``Dependency``s, shared by copies of this
    /// runner.
    private let workerDependencies: DependencyStore
    private let middleware: TaskMiddlewareChain
    /// Asks the workflow store whether to run a workflow step (set by the
    /// ``Worker`` when it has a ``WorkerConfiguration/workflowStore``).
    var workflowGate: (@Sendable (_ step: String, _ join: JoinMembership?, _ session: UInt64, _ takingOver: Bool) async throws -> StepStart)?
    /// ``WorkerConfiguration/deduplicatesTasks``: tasks without an
    /// ``TaskOptions/deduplicated`` of their own go through the gate too.
    var deduplicatesTasks = false
    /// The broker's delivery acknowledgement timeout, when the ``Worker``
    /// knows one (``WorkerConfiguration/consumerTimeout``): a task still
    /// running near it is stopped with ``ConsumerTimeoutError``.
    var consumerTimeout: ConsumerTimeoutBudget?

    /// - Parameters:
    ///   - app: the tasks; those registered after this call are not seen.
    ///   - maxMessageBytes: bodies over this size are rejected, in bytes
    ///     (default 1 MiB).
    ///   - taskTimeLimit: the longest one task may run; nil
    ///     (default) or `.zero` or less means no limit. See
    ///     ``WorkerConfiguration/taskTimeLimit``.
    ///   - retryPolicy: for tasks registered without a policy of their own
    ///     (default ``RetryPolicy/never``).
    ///   - transientRetryPolicy: how transient infrastructure errors are
    ///     retried (``TransientRetryPolicy``; default: 10 retries within
    ///     10 minutes).
    ///   - logger: handed to tasks through ``TaskContext/logger``; failed
    ///     dependency teardowns are logged to it.
    ///   - middleware: their ``TaskMiddleware/run(_:next:)`` hooks wrap
    ///     each handler call, the first outermost.
    public init(
        app: TaskApp,
        maxMessageBytes: Int = 1_048_576,
        taskTimeLimit: Duration? = nil,
        retryPolicy: RetryPolicy = .never,
        transientRetryPolicy: TransientRetryPolicy = TransientRetryPolicy(),
        logger: Logger = Logger(label: "qtasks.worker"),
        middleware: [any TaskMiddleware] = []
    ) {
        self.init(
            app: app, maxMessageBytes: maxMessageBytes, taskTimeLimit: taskTimeLimit, retryPolicy: retryPolicy,
            transientRetryPolicy: transientRetryPolicy, logger: logger, middleware: TaskMiddlewareChain(middleware: middleware))
    }

    init(
        app: TaskApp,
        maxMessageBytes: Int,
        taskTimeLimit: Duration?,
        retryPolicy: RetryPolicy,
        transientRetryPolicy: TransientRetryPolicy,
        logger: Logger,
        middleware: TaskMiddlewareChain
    ) {
        self.middleware = middleware
        self.maxMessageBytes = maxMessageBytes
        self.taskTimeLimit = taskTimeLimit.flatMap { $0 > .zero ? $0 : nil }
        self.retryPolicy = retryPolicy
        self.transientRetryPolicy = transientRetryPolicy
        self.catalog = app.catalog()
        self.decoder = TaskEnvelope.makeDecoder(catalog: catalog)
        self.logger = logger
        self.workerDependencies = DependencyStore(scope: .worker, logger: logger)
    }

    /// Tears down the worker-scoped dependencies that were set up, in
    /// reverse order of setup, telling them ``DependencyOutcome/shutdown``.
    ///
    /// Call it once the last ``execute(_:)`` returned (the ``Worker`` does,
    /// at the end of graceful shutdown); later resolutions of worker-scoped
    /// dependencies fail with ``DependencyError`` `.unavailable`. Failed
    /// teardowns are logged at `error` level; the rest still run. Safe to
    /// call more than once.
    public func tearDownWorkerDependencies() async {
        _ = await workerDependencies.close(.shutdown, reason: "the worker is shutting down")
    }

    /// Runs the task a delivery carries, then tears down its task-scoped
    /// dependencies.
    ///
    /// Never throws: every failure is an outcome. Cancellation of the
    /// calling task while the handler runs gives `.cancelled`; going over
    /// the time limit fails with ``TaskTimeLimitError``; a thrown
    /// ``TaskCancellation`` gives `.cancelledByTask`; any other error
    /// `.retry` or `.failed` as the task's ``RetryPolicy`` decides. The
    /// task-scoped dependencies are torn down before this returns, in
    /// reverse order of setup, even when the call was cancelled; a
    /// teardown that throws turns a success into `.failed` with
    /// ``DependencyError`` `.teardownFailed` (after a failure, the first
    /// error stays).
    ///
    /// Messages of every format are read (``WireFormat``), with their
    /// producer's instructions: an expired one (Celery `expires`, Dramatiq
    /// `max_age`) is `.cancelledByTask` with traceback
    /// `"TaskRevokedError: expired at <time>"`, without running; the
    /// producer's time limit and attempt count are used; one that is not due
    /// yet (more than a second before its `eta`) is `.rejected`, since only
    /// the ``Worker`` can hand it back to the broker until then (it does so
    /// before calling this).
    public func execute(_ delivery: Delivery) async -> TaskOutcome {
        await execute(delivery, span: nil).outcome
    }

    /// An outcome, and whether a `.retry` is a transient-error retry
    /// (``TransientRetryPolicy``): its copy then carries the next
    /// ``TransientRetryCount``.
    struct Execution: Sendable {
        var outcome: TaskOutcome
        var transientRetry: TransientRetryCount? = nil
        /// The step's workflow context, for a step of a workflow.
        var workflow: WorkflowContext? = nil
        /// Set when another delivery of this workflow step is running:
        /// publish the message again after this delay, unchanged.
        var deferral: Duration? = nil
        /// The step ran before: `outcome` holds its recorded result and
        /// the handler did not run.
        var recorded = false
        /// The step's group failed fast: dead-letter it unrun, do not
        /// count it in the join.
        var halted = false
        /// The task runs once per uuid (a workflow step, or
        /// ``TaskOptions/deduplicated``): its success is recorded.
        var deduplicated = false
        /// The delivery was acknowledged before the handler ran
        /// (``TaskAcknowledgement/onStart``): it must not be settled again.
        var acknowledgedOnStart = false
        /// Not run: the delivery waited (in the prefetch buffer) until its
        /// consumer-timeout deadline had passed. Requeue it, no attempt spent.
        var expiredBeforeStart = false
    }

    /// When a delivery must be settled by, from the broker's
    /// `consumer_timeout`.
    struct AcknowledgementDeadline: Sendable {
        var instant: ContinuousClock.Instant
        var consumerTimeout: Duration
        /// `instant` counted from the delivery.
        var afterDelivery: Duration
    }

    /// ``execute(_:)``, telling `span` (the ``Worker``'s span for this
    /// delivery) the task's name and uuid once they are read, and
    /// recording on it the error that failed the task, bad input included.
    /// The caller runs this inside the span's `ServiceContext`, so that
    /// dependency setup and teardown and the handler's own spans and log
    /// lines are within it.
    ///
    /// `acknowledgeOnStart` acknowledges the delivery, for a task with
    /// ``TaskAcknowledgement/onStart``: called just before its handler runs;
    /// when it throws, the handler does not run (`.cancelled`: the broker
    /// has the delivery back).
    func execute(
        _ delivery: Delivery, span: (any Span)?, acknowledgeOnStart: (@Sendable () async throws -> Void)? = nil
    ) async -> Execution {
        let properties = delivery.message.properties
        var body = delivery.message.body
        var attempt = TaskContext.attempt(from: properties.headers)
        let size = delivery.discardedBodySize ?? body.count
        guard size <= maxMessageBytes, delivery.discardedBodySize == nil else {
            return Execution(
                outcome: rejection(
                    TaskInputError(.oversizeMessage, "task message body is \(size) bytes, over the limit of \(maxMessageBytes) bytes"),
                    properties: properties,
                    attempt: attempt,
                    span: span),
                // A workflow step too large to run still fails its workflow.
                workflow: delivery.discardedBodySize == nil ? WorkflowContext.peek(in: body) : nil)
        }
        // Celery, Dramatiq and Taskiq messages are rewritten as a QTasks
        // body, then decoded like any other (same typed arguments, same
        // errors); their instructions (eta, expiry, attempts, time limit)
        // come along.
        let inbound: InboundTask
        do {
            inbound = try InboundTask.read(delivery.message)
        } catch {
            return Execution(outcome: rejection(error, properties: properties, attempt: attempt, span: span))
        }
        body = inbound.body
        if properties.headers[MessageHeaders.attempt] == nil, let retries = inbound.retries {
            // The producer's own count, when the worker has not counted yet.
            attempt = retries < Int.max ? retries + 1 : retries
        }
        let envelope: TaskEnvelope
        let now = Date().timeIntervalSince1970
        do {
            envelope = try TaskEnvelope.decode(body, catalog: catalog, messageID: properties.messageID, decoder: decoder, now: now)
        } catch {
            // An unknown task or wrong arguments in a workflow step: the
            // workflow learns that the step failed (docs/workflows.md).
            return Execution(
                outcome: rejection(error, properties: properties, attempt: attempt, span: span),
                workflow: WorkflowContext.peek(in: body))
        }
        if let notBefore = inbound.notBefore, notBefore > now + Self.earlinessTolerance {
            // The worker defers such a message through the broker before
            // it gets here (Worker+Scheduling); only a broker that cannot
            // delay lets one through, and running it early would drop
            // the producer's instruction.
            return Execution(outcome: rejection(
                TaskInputError(
                    .invalidField,
                    "the task may not run before \(ISOTime.text(notBefore)) and this broker cannot hold it until then",
                    uuid: envelope.uuid, taskName: envelope.taskName),
                properties: properties, attempt: attempt, span: span))
        }
        if let span {
            span.operationName = "run \(envelope.taskName)"
            // A no-op span (no tracer bootstrapped) would still build the
            // attribute dictionary: a tenth of a send's CPU.
            if span.isRecording {
                span.updateAttributes { attributes in
                    attributes[TracingAttributes.taskName] = envelope.taskName
                    attributes[TracingAttributes.messageID] = envelope.uuid
                }
            }
        }
        // The call's logger (uuid and task metadata) is made only if a
        // teardown fails: setting a logger's metadata costs a tenth of a
        // no-op task with StreamLogHandler.
        let dependencies = CallDependencies(
            call: DependencyStore(scope: .task, logger: logger, call: (envelope.uuid, envelope.taskName)), worker: workerDependencies)
        var context = TaskContext(
            uuid: envelope.uuid,
            taskName: envelope.taskName,
            attempt: attempt,
            queue: delivery.queue,
            redelivered: delivery.redelivered,
            priority: envelope.priority,
            createdAt: envelope.createdAt,
            arguments: envelope.call.arguments ?? TaskArguments(body: body),
            properties: properties,
            logger: logger
        )
        context.dependencies = dependencies
        if let expiresAt = inbound.expiresAt, now > expiresAt {
            // Celery revokes an expired task without running it
            // (celery.worker.request.Request.revoked): a `cancel` result,
            // REVOKED with TaskRevokedError('expired') for a Celery client;
            // acknowledged, not dead-lettered, like a task that cancelled
            // itself.
            return Execution(outcome: .cancelledByTask(result(
                context, .cancel, traceback: CeleryResult.revokedPrefix + "expired at \(ISOTime.text(expiresAt))")))
        }
        let call = envelope.call
        let options = envelope.options ?? TaskOptions()
        // The producer's limit for this message wins, as Celery's
        // `time_limit` option does over the task's own.
        let timeLimit: Duration? = if let sent = inbound.timeLimit { sent }
            else if let own = options.timeLimit { own > .zero ? own : nil } else { taskTimeLimit }
        let outcome: TaskOutcome
        var transientRetry: TransientRetryCount?
        let ending: DependencyOutcome
        let workflow = envelope.workflow
        let deduplicated = workflow != nil || (options.deduplicated ?? deduplicatesTasks)
        let acknowledgesOnStart = options.acknowledgement == .onStart && acknowledgeOnStart != nil
        // Counted from the delivery: the broker's clock started then, not
        // when a slot freed up for the task.
        let ackDeadline: AcknowledgementDeadline? =
            if !acknowledgesOnStart, let budget = consumerTimeout, let timeout = budget.timeout, let after = budget.deadline {
                AcknowledgementDeadline(instant: delivery.receivedAt + after, consumerTimeout: timeout, afterDelivery: after)
            } else { nil }
        if let ackDeadline, ackDeadline.instant <= .now {
            // Started now, it would be stopped at once and spend an
            // attempt it never had: back to the queue instead.
            _ = await dependencies.call.close(.cancelled, reason: "the delivery waited past its consumer_timeout deadline")
            return Execution(
                outcome: .cancelled(result(
                    context, .cancel,
                    traceback: "CancellationError: not started within \(Seconds.logValue(ackDeadline.afterDelivery)) s of its delivery (consumer_timeout)")),
                workflow: workflow, expiredBeforeStart: true)
        }
        var acknowledged = false
        do {
            if deduplicated, let gate = workflowGate, envelope.taskName != WorkflowContext.startTaskName {
                // Redelivered, a retry or a replayed dead letter: any
                // earlier run of this delivery is over.
                let takingOver = delivery.redelivered || attempt > 1 || properties.headers[MessageHeaders.replayedAt] != nil
                switch try await gate(envelope.uuid, workflow?.join, delivery.token.generation, takingOver) {
                case .run:
                    break
                case .finished(let returning):
                    _ = await dependencies.call.close(.success, reason: "the step had run before")
                    return Execution(
                        outcome: .completed(result(context, .success, returning: returning)), workflow: workflow, recorded: true,
                        deduplicated: true)
                case .running:
                    _ = await dependencies.call.close(.cancelled, reason: "another delivery of the step is running")
                    let failure = TaskFailure(errorType: "TaskBusy", message: "another delivery of task \(envelope.uuid) is running; checking again later")
                    return Execution(
                        outcome: .retry(result(context, .error, traceback: failure.traceback), failure, delay: Self.busyStepDelay),
                        workflow: workflow, deferral: Self.busyStepDelay)
                case .halted:
                    _ = await dependencies.call.close(.cancelled, reason: "the workflow failed fast")
                    let failure = TaskFailure(
                        errorType: "WorkflowCancelled",
                        message: "not run: workflow \(workflow?.id ?? "?") failed fast (another member of group \(workflow?.join?.id ?? "?") failed); replay this dead letter to resume")
                    return Execution(outcome: .failed(result(context, .cancel, traceback: failure.traceback), failure), workflow: workflow, halted: true)
                }
            }
            if acknowledgesOnStart, let acknowledgeOnStart {
                do {
                    try await acknowledgeOnStart()
                } catch {
                    _ = await dependencies.call.close(.cancelled, reason: "the delivery could not be acknowledged on start")
                    return Execution(
                        outcome: .cancelled(result(
                            context, .cancel, traceback: "CancellationError: the delivery could not be acknowledged on start: \(error)")),
                        workflow: workflow)
                }
                acknowledged = true
            }
            let returning = try await TaskContext.$current.withValue(context) { [context] in
                try await run(call, context, timeLimit: timeLimit, ackDeadline: ackDeadline)
            }
            outcome = .completed(result(context, .success, returning: returning))
            ending = .success
        } catch {
            if Task.isCancelled {
                outcome = .cancelled(result(context, .cancel, traceback: "CancellationError: the worker cancelled the task"))
                ending = .cancelled
            } else if let cancellation = error as? TaskCancellation {
                outcome = .cancelledByTask(result(context, .cancel, traceback: TaskFailure(cancellation).traceback))
                ending = .cancelled
            } else {
                span?.recordError(error)
                var failure = TaskFailure(error)
                // Transient infrastructure errors first (a State store
                // down): retried whatever the task's own policy says, and
                // not counted against its attempts.
                let transient = TransientRetryCount(headers: properties.headers)
                let now = Date().timeIntervalSince1970
                let transientDecision = (options.transientRetry ?? transientRetryPolicy)
                    .decision(after: error, retries: transient.retries, since: transient.since, now: now)
                if case .retry(let delay)? = transientDecision {
                    outcome = .retry(result(context, .error, traceback: failure.traceback), failure, delay: delay)
                    transientRetry = transient
                } else {
                    let ownAttempt = max(1, attempt - transient.retries)
                    switch (options.retry ?? retryPolicy).decision(after: error, attempt: ownAttempt) {
                    case .retry(let delay):
                        outcome = .retry(result(context, .error, traceback: failure.traceback), failure, delay: delay)
                    case .giveUp:
                        if case .giveUp(let reason)? = transientDecision {
                            // The dead letter and the result say that the
                            // error was retried as transient, for how long.
                            failure.message += " (\(reason))"
                        }
                        outcome = .failed(result(context, .error, traceback: failure.traceback), failure)
                    }
                }
                ending = .error(error)
            }
        }
        // Teardowns see the task's context too (TaskContext.current); a
        // call that resolved nothing has none to run, and is closed without
        // binding the context again.
        let teardownError: DependencyError? =
            if dependencies.call.closeIfUnused(ending, reason: Self.callEnded) { nil } else {
                await TaskContext.$current.withValue(context) {
                    await dependencies.call.close(ending, reason: Self.callEnded)
                }
            }
        if case .completed = outcome, let teardownError {
            span?.recordError(teardownError)
            let failure = TaskFailure(teardownError)
            return Execution(
                outcome: .failed(result(context, .error, traceback: failure.traceback), failure), workflow: workflow,
                acknowledgedOnStart: acknowledged)
        }
        return Execution(
            outcome: outcome, transientRetry: transientRetry, workflow: workflow, deduplicated: deduplicated,
            acknowledgedOnStart: acknowledged)
    }

    private static let callEnded = "the task call has ended"

    /// How long a delivery of a workflow step waits while another delivery
    /// of the same step runs.
    static let busyStepDelay: Duration = .seconds(5)

    /// How early a message may run before its `eta` (Unix seconds): the
    /// broker's delay queues round delays, and clocks differ a little.
    static let earlinessTolerance = 1.0

    /// Runs the handler, within `timeLimit` and before `ackDeadline` when
    /// there are: the first one to come stops it with its error.
    private func run(
        _ call: PreparedCall, _ context: TaskContext, timeLimit: Duration?, ackDeadline: AcknowledgementDeadline?
    ) async throws -> JSONValue {
        let middleware = self.middleware
        if timeLimit == nil, let ackDeadline, let budget = consumerTimeout {
            // The common case (a consumer timeout, no time limit): the
            // worker's watchdog, not a timer per task.
            return try await budget.watchdog.run(
                until: ackDeadline.instant, margin: budget.effectiveMargin(for: ackDeadline.consumerTimeout),
                error: ConsumerTimeoutError(
                    taskName: context.taskName, consumerTimeout: ackDeadline.consumerTimeout, deadline: ackDeadline.afterDelivery)
            ) { try await middleware.run(context) { try await call.run($0) } }
        }
        // A huge limit would overflow the sleep's deadline; a billion seconds is "never".
        var stop: (instant: ContinuousClock.Instant, error: any Error & Sendable)? = timeLimit.map { limit in
            (ContinuousClock.now + Seconds.clamped(limit), TaskTimeLimitError(taskName: context.taskName, limit: limit))
        }
        if let ackDeadline, stop.map({ ackDeadline.instant < $0.instant }) ?? true {
            stop = (ackDeadline.instant, ConsumerTimeoutError(
                taskName: context.taskName, consumerTimeout: ackDeadline.consumerTimeout, deadline: ackDeadline.afterDelivery))
        }
        guard let stop else {
            return try await middleware.run(context) { try await call.run($0) }
        }
        return try await withThrowingTaskGroup(of: JSONValue.self) { group in
            group.addTask { try await middleware.run(context) { try await call.run($0) } }
            group.addTask {
                try await Task.sleep(until: stop.instant, clock: .continuous)
                throw stop.error
            }
            defer { group.cancelAll() }
            // The first child to finish decides; two children, so never nil.
            return try await group.next() ?? .null
        }
    }

    private func result(
        _ context: TaskContext,
        _ status: TaskStatus,
        returning: JSONValue? = nil,
        traceback: String? = nil
    ) -> TaskResult {
        TaskResult(
            uuid: context.uuid,
            taskName: context.taskName,
            status: status,
            returning: returning?.isNull == true ? nil : returning,
            traceback: traceback,
            createdAt: context.createdAt,
            updatedAt: Date().timeIntervalSince1970,
            retry: context.attempt - 1
        )
    }

    private func rejection(_ error: TaskInputError, properties: MessageProperties, attempt: Int, span: (any Span)?) -> TaskOutcome {
        span?.recordError(error)
        if let taskName = error.taskName, let span {
            // Only registered names go into span names, which tracing
            // backends group by: a producer's garbage stays an attribute.
            if catalog.tasks[taskName] != nil { span.operationName = "run \(taskName)" }
            span.attributes[TracingAttributes.taskName] = taskName
        }
        let now = Date().timeIntervalSince1970
        let failure = TaskFailure(errorType: "TaskInputError", message: error.message)
        let result = TaskResult(
            uuid: error.uuid ?? properties.messageID ?? TaskUUID.make(),
            taskName: error.taskName ?? "",
            status: .error,
            returning: nil,
            traceback: failure.traceback,
            createdAt: now,
            updatedAt: now,
            retry: attempt - 1
        )
        return .rejected(result, failure)
    }
}
