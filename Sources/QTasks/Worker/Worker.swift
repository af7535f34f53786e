import Foundation
import Logging
import ServiceLifecycle
import Synchronization
import Tracing

/// Consumes task messages from a broker, runs their handlers, publishes
/// results to `reply_to`, and settles each delivery.
///
/// Settling follows the at-least-once contract: a delivery is acknowledged
/// only after its handler finished and everything published for it (result,
/// retry copy, dead letter) was confirmed by the broker. When such a publish
/// fails, the delivery is rejected with requeue (after a short pause), so
/// the broker delivers it again; if its connection is gone, the broker
/// requeues it by itself.
///
/// - Success: result published, delivery acknowledged.
/// - Handler error that its ``RetryPolicy`` retries: no result; a copy of
///   the message with the next `x-qtasks-attempt` (and
///   `x-qtasks-first-failed-at`, `x-qtasks-error-type`,
///   `x-qtasks-error-message`) published to the same queue after the
///   backoff delay, held by the broker (``DelayedPublishing``); then the
///   delivery acknowledged.
/// - Handler error on the last attempt, or not retried, or bad input
///   (oversize, malformed JSON, unknown task, wrong arguments): error result
///   published, a copy of the original message (same body and properties,
///   plus the headers of ``MessageHeaders``: error type and message, origin
///   queue, first and last failure time, attempts) published to
///   `<queue>.dlq`, then the delivery acknowledged.
/// - The task cancelled itself (``TaskCancellation``): `cancel` result
///   published, delivery acknowledged.
/// - Cancelled by the worker (shutdown deadline, lost connection): rejected
///   with requeue, no result.
/// - Still running ``WorkerConfiguration/consumerTimeoutMargin`` before the
///   broker's `consumer_timeout` (``WorkerConfiguration/consumerTimeout``,
///   counted from the delivery): stopped, and failed with
///   ``ConsumerTimeoutError`` like any error (retry, then dead letter), so
///   that the broker never closes the channel under it. A task with
///   ``TaskOptions/acknowledgement`` `.onStart` is acknowledged before its
///   handler runs instead (at most once) and is not stopped.
///
/// Connection loss (the delivery stream ends with an error): running tasks
/// are cancelled (their deliveries belong to the dead connection and are
/// redelivered by the broker; nothing is acknowledged on a newer one), then
/// the worker declares its queues and consumes again, retrying with
/// ``WorkerConfiguration/reconnectBackoff``, logging each step.
///
/// One queue taken away while the connection lives (deleted, locked by
/// another connection): a broker that consumes each queue on its own
/// channel (`RabbitMQBroker`) consumes it again on its own; the stream goes
/// on, that queue's unsettled deliveries can no longer be settled and
/// publish nothing (``Broker/canSettle(_:)``), the other queues' run on.
///
/// A suspect delivery (its quorum queue's `x-delivery-count` of 1 or more:
/// an earlier delivery ended unsettled, by a crash or a lost connection)
/// runs alone, so that a poison message that crashes the process again
/// spends only its own delivery count
/// (``WorkerConfiguration/isolatesSuspectDeliveries``).
///
/// Graceful shutdown (service-lifecycle's, from a `ServiceGroup`, or
/// ``triggerGracefulShutdown()``) stops consuming; deliveries received but
/// not started are rejected with requeue; running tasks get
/// ``WorkerConfiguration/shutdownGracePeriod`` to finish, then are
/// cancelled and requeued. ``run()`` then returns normally. Cancellation is
/// cooperative: a handler that never checks for it (or awaits nothing
/// cancellable) delays the return until it finishes. Worker-scoped
/// ``Dependency`` instances are torn down after the last task finished,
/// in reverse order of setup, before ``run()`` returns.
///
/// Tracing (``WorkerConfiguration/tracer``; done by ``TracingTaskMiddleware``,
/// installed unless ``WorkerConfiguration/standardMiddleware`` is off): each delivery runs in a span
/// `run <task name>` of kind `consumer`, the child of the trace context in
/// its headers (W3C `traceparent` from ``TaskClient``, another service's
/// OpenTelemetry instrumentation or any producer that writes it). The span
/// covers decoding, dependency setup and teardown, the handler and
/// settling; its `ServiceContext` is current meanwhile, so the handler's
/// spans are its children and the outcome's log line carries its ids
/// through a logging metadata provider (swift-otel's). Its context goes
/// into the headers of the result, of the retry copy (the next attempt's
/// span is then its child) and of the dead-letter copy. Span attributes
/// follow OpenTelemetry's messaging conventions (docs/operations.md,
/// "Tracing").
///
/// A worker runs once; make a new one to run again.
public final class Worker: Service, Sendable {
    /// The configuration the worker was made with.
    public let configuration: WorkerConfiguration
    let broker: any Broker
    private let app: TaskApp
    private let shutdown = ShutdownSignal()
    /// Queues this worker declared for workflow steps it published.
    let workflowQueues = Mutex<Set<String>>([])
    /// Deliveries acknowledged before their task ran
    /// (``TaskAcknowledgement/onStart``), until the task is settled.
    let acknowledgedOnStart = Mutex<Set<DeliveryToken>>([])
    /// Deliveries still being settled after their task's slot was freed
    /// (``publishResultThenAcknowledge(_:to:outcome:for:metadata:)``).
    let settlementsInFlight = SettlementsInFlight()
    /// The broker's `consumer_timeout`, configured or learnt.
    let consumerTimeoutBudget: ConsumerTimeoutBudget
    /// The configuration's middleware, then the initializer's; the
    /// standard middleware goes outside them when `run()` starts.
    private let userMiddleware: [any TaskMiddleware]

    /// - Parameters:
    ///   - broker: where tasks come from; its owner closes it after `run()`.
    ///   - app: the tasks; the worker takes a snapshot when `run()` starts.
    ///   - middleware: run around every task, the first outermost, inside
    ///     the standard middleware and ``WorkerConfiguration/middleware``
    ///     (see ``TaskMiddleware``).
    public init(
        broker: any Broker,
        app: TaskApp,
        configuration: WorkerConfiguration = WorkerConfiguration(),
        @TaskMiddlewareBuilder middleware: () -> [any TaskMiddleware] = { [] }
    ) {
        self.broker = broker
        self.app = app
        self.configuration = configuration
        self.userMiddleware = configuration.middleware + middleware()
        self.consumerTimeoutBudget = ConsumerTimeoutBudget(
            configured: configuration.consumerTimeout, margin: configuration.consumerTimeoutMargin)
    }

    /// The whole chain: the standard middleware (unless turned off), then
    /// the configuration's, then the initializer's. Made when `run()`
    /// starts, with the app's tasks as the runner sees them (the metrics'
    /// task labels).
    private func makeMiddleware(recorder: TaskEventRecorder?) -> [any TaskMiddleware] {
        var chain: [any TaskMiddleware] = []
        if configuration.standardMiddleware {
            // Tracing outermost: the log line and the metrics are within
            // the span (the log line carries its trace ids).
            chain.append(TracingTaskMiddleware(tracer: configuration.tracer))
            chain.append(LoggingTaskMiddleware(logger: configuration.logger))
            chain.append(MetricsTaskMiddleware(app: app, factory: configuration.metricsFactory))
        }
        if let recorder { chain.append(recorder) }
        return chain + userMiddleware
    }

    /// Starts graceful shutdown as a `ServiceGroup` would: for a worker run
    /// outside one (tests, embedding). Safe to call at any time, repeatedly.
    public func triggerGracefulShutdown() {
        shutdown.fire()
    }

    /// Declares the queues, consumes until graceful shutdown, and returns
    /// once every received delivery is settled or requeued.
    ///
    /// - Throws: ``QueueNameError`` or ``WorkerConfigurationError`` when
    ///   ``WorkerConfiguration/validate()`` refuses the configuration
    ///   (before any broker call); a ``BrokerError`` when the first declaration or consume
    ///   fails (a wrong URL, a refused queue), or when consuming again after
    ///   a lost connection failed ``WorkerConfiguration/reconnectAttempts``
    ///   times in a row; the unacknowledged deliveries then return to their
    ///   queues through the broker.
    public func run() async throws {
        // Before anything is declared: a bad name would leave queues behind.
        try configuration.validate()
        try await withGracefulShutdownHandler {
            try await consumeUntilShutdown()
        } onGracefulShutdown: { [shutdown] in
            shutdown.fire()
        }
    }

    private enum ChildEvent: Sendable {
        case taskFinished(queue: String)
        case deadline
        case watcherStopped
    }

    private func consumeUntilShutdown() async throws {
        let recorder = configuration.events.map { TaskEventRecorder(recording: $0, app: app, configuration: configuration) }
        // The recorder's writers and heartbeats run beside the consuming
        // loop and stop after it: the last events and the offline heartbeat
        // are written once every task has settled.
        let recording = recorder.map { recorder in Task { await recorder.run() } }
        do {
            try await consumeUntilShutdown(recorder: recorder)
        } catch {
            await finishRecording(recorder, recording)
            throw error
        }
        await finishRecording(recorder, recording)
    }

    /// Stops the recorder and waits for its last writes, at most its
    /// flush timeout and a second: a sink that hangs (a write that never
    /// returns) must not keep the worker from stopping. It is then
    /// cancelled and left behind.
    private func finishRecording(_ recorder: TaskEventRecorder?, _ recording: Task<Void, Never>?) async {
        guard let recorder, let recording else { return }
        recorder.finish()
        let limit = Seconds.clamped((configuration.events?.shutdownFlushTimeout ?? .zero) + .seconds(1))
        // Not a task group: it would await the hung child at its end.
        let finished = await withCheckedContinuation { (continuation: CheckedContinuation<Bool, Never>) in
            let resumed = Mutex(false)
            let resume: @Sendable (Bool) -> Void = { value in
                if resumed.withLock({ done in defer { done = true }; return !done }) { continuation.resume(returning: value) }
            }
            let timer = Task {
                try? await Task.sleep(for: limit)
                resume(false)
            }
            Task {
                await recording.value
                timer.cancel()
                resume(true)
            }
        }
        if !finished { recording.cancel() }
        if !finished {
            configuration.logger.error(
                "task event sinks did not finish within the shutdown flush timeout; stopping without them",
                metadata: ["timeout_s": .stringConvertible(Seconds.logValue(limit))])
        }
        let dropped = recorder.droppedEvents
        if dropped > 0 {
            configuration.logger.warning("task events dropped while recording", metadata: ["dropped": .stringConvertible(dropped)])
        }
    }

    private func consumeUntilShutdown(recorder: TaskEventRecorder?) async throws {
        let logger = configuration.logger
        let chain = TaskMiddlewareChain(middleware: makeMiddleware(recorder: recorder))
        var executor = TaskRunner(
            app: app,
            maxMessageBytes: configuration.maxMessageBytes,
            taskTimeLimit: configuration.taskTimeLimit,
            retryPolicy: configuration.retryPolicy,
            transientRetryPolicy: configuration.transientRetry,
            logger: logger,
            middleware: chain
        )
        executor.consumerTimeout = consumerTimeoutBudget
        if let store = configuration.workflowStore {
            // This worker process and its consumer session: a running mark
            // of the same runner is a copy running beside, never taken over.
            let process = TaskUUID.make()
            executor.workflowGate = { step, join, session, takingOver in
                try await store.beginStep(step, join: join, runner: "\(process)/\(session)", takingOver: takingOver)
            }
            executor.deduplicatesTasks = configuration.deduplicatesTasks
        }
        // Reconnects are the worker's, not a task's: counted here.
        let metrics = WorkerMetrics(knownTasks: app.taskNames, factory: configuration.metricsFactory)
        if !(broker is any DelayedPublishing) {
            logger.warning("this broker cannot delay messages: retries are published again at once, without backoff")
        }
        var sessions = 0
        var failures = 0
        var finalError: (any Error)?
        while !shutdown.isFired {
            let deliveries: AsyncThrowingStream<Delivery, any Error>
            do {
                for queue in configuration.queues {
                    do {
                        try await broker.declareTaskQueue(queue)
                    } catch let error as BrokerError where sessions > 0 && error.code == .refused {
                        // Consuming again after a loss: one queue the broker
                        // refuses (deleted and locked by another
                        // connection's exclusive queue: 405) must not keep
                        // the others from being served. The broker retries
                        // it on its own (RabbitMQBroker.consume) and logs it.
                        logger.debug("queue declaration refused; consuming the others", metadata: ["queue": .string(queue), "error": "\(error)"])
                    }
                }
                deliveries = try await broker.consume(configuration.subscriptions)
            } catch {
                // The first time, fail fast: a wrong URL or a refused queue
                // is a configuration error, not a fault to sit out.
                if sessions == 0 {
                    finalError = error
                    break
                }
                failures += 1
                guard await pauseBeforeReconnecting(after: error, failures: failures) else {
                    if !shutdown.isFired { finalError = error }
                    break
                }
                continue
            }
            sessions += 1
            if sessions == 1 {
                logger.info(
                    "worker started",
                    metadata: [
                        "queues": .string(configuration.queues.joined(separator: ",")),
                        "concurrency": .stringConvertible(configuration.effectiveConcurrency),
                        "prefetch": .stringConvertible(configuration.effectivePrefetch),
                        "tasks": .string(app.taskNames.joined(separator: ",")),
                    ]
                )
            } else {
                metrics.reconnected()
                logger.notice(
                    "reconnected: consuming again",
                    metadata: ["queues": .string(configuration.queues.joined(separator: ",")), "attempt": .stringConvertible(failures)]
                )
            }
            failures = 0
            guard let lost = await consume(deliveries, executor, chain) else { break }
            if shutdown.isFired { break }
            failures = 1
            guard await pauseBeforeReconnecting(after: lost, failures: failures) else {
                if !shutdown.isFired { finalError = lost }
                break
            }
        }
        // Every task has finished: now the worker-scoped dependencies go.
        await executor.tearDownWorkerDependencies()
        if let finalError { throw finalError }
        logger.info("worker stopped")
    }

    /// Logs the failure and sleeps the reconnect backoff; false when the
    /// worker must stop instead (attempts used up, or shutdown began).
    private func pauseBeforeReconnecting(after error: any Error, failures: Int) async -> Bool {
        let logger = configuration.logger
        if let limit = configuration.reconnectAttempts, failures > limit {
            logger.error(
                "connection lost; giving up",
                metadata: ["error": "\(error)", "attempts": .stringConvertible(failures - 1)]
            )
            return false
        }
        let delay = configuration.reconnectBackoff.delay(forRetry: failures)
        logger.warning(
            failures == 1 ? "connection lost; reconnecting" : "reconnect failed; trying again",
            metadata: [
                "error": "\(error)",
                "attempt": .stringConvertible(failures),
                "delay_s": .stringConvertible(Seconds.logValue(delay)),
            ]
        )
        return await sleepUnlessShutdown(for: delay)
    }

    /// Sleeps; false when graceful shutdown began first.
    private func sleepUnlessShutdown(for delay: Duration) async -> Bool {
        let shutdown = self.shutdown
        return await withTaskGroup(of: Bool.self) { group in
            group.addTask {
                do {
                    try await Task.sleep(for: Seconds.clamped(delay))
                    return true
                } catch {
                    return false
                }
            }
            group.addTask {
                _ = await shutdown.wait()
                return false
            }
            let slept = await group.next() ?? false
            group.cancelAll()
            return slept && !shutdown.isFired
        }
    }

    /// One consuming session: runs deliveries until the stream ends.
    /// Returns the stream's error (connection lost), nil after shutdown.
    private func consume(_ deliveries: AsyncThrowingStream<Delivery, any Error>, _ executor: TaskRunner, _ chain: TaskMiddlewareChain) async -> (any Error)? {
        let logger = configuration.logger
        let concurrency = configuration.effectiveConcurrency
        return await withTaskGroup(of: ChildEvent.self) { group in
            group.addTask { await self.watchForShutdown() }
            // Children started and not yet collected with next(): this is
            // what bounds concurrency, and what keeps the group from piling
            // up finished children.
            var running = 0
            // Per queue, for the queues with a concurrency of their own.
            let queueLimits = configuration.queueConcurrency
            var runningIn: [String: Int] = [:]
            // Received after shutdown began: requeued once the stream ends,
            // so the broker cannot hand them straight back to us.
            var held: [Delivery] = []
            var streamError: (any Error)?
            // Deliveries of a lost connection not started.
            var dropped = 0

            func collect(_ event: ChildEvent?) -> Bool {
                switch event {
                case .taskFinished(let queue)?:
                    running -= 1
                    if queueLimits[queue] != nil { runningIn[queue, default: 1] -= 1 }
                    return false
                case .deadline?:
                    return true
                case .watcherStopped?, nil:
                    return false
                }
            }

            // Read from the stream: beside what the broker says it handed
            // out, the count of what the stream still buffers.
            var taken = 0
            var iterator = deliveries.makeAsyncIterator()
            let isolating = configuration.isolatesSuspectDeliveries
            do {
                while let delivery = try await iterator.next() {
                    taken += 1
                    // A queue's own limit rarely waits here: its prefetch is
                    // that limit, so the broker holds its next delivery back.
                    let queue = delivery.queue
                    let queueLimit = queueLimits[queue].map { max(1, $0) }
                    while running >= concurrency || queueLimit.map({ runningIn[queue, default: 0] >= $0 }) == true {
                        if collect(await group.next()) { self.cancelStragglers(&group, running: running) }
                    }
                    if !broker.canSettle(delivery) {
                        // Buffered before the connection was lost: its tag
                        // is dead and the broker has requeued it. Started,
                        // it would run a second time for nothing.
                        dropped += 1
                        if dropped == 1 {
                            logger.warning(
                                "consumer channel or connection lost: buffered deliveries are dropped unstarted, the broker redelivers them",
                                metadata: ["queue": .string(queue)])
                        }
                        continue
                    }
                    if shutdown.isFired {
                        held.append(delivery)
                        continue
                    }
                    if isolating, let count = Self.priorDeliveries(delivery), count > 0,
                       let handed = await broker.pauseConsuming() {
                        // A suspect: its last delivery ended unsettled (a
                        // crash, a lost connection). Alone, with nothing
                        // else unacknowledged: if it crashes the process
                        // again, only its own delivery count rises.
                        logger.notice(
                            "suspect delivery (delivered before, never settled): running it alone",
                            metadata: ["queue": .string(queue), "prior_deliveries": .stringConvertible(count)])
                        while running > 0 {
                            if collect(await group.next()) { self.cancelStragglers(&group, running: running) }
                        }
                        var buffered: [Delivery] = []
                        while taken < handed, let next = try await iterator.next() {
                            taken += 1
                            buffered.append(next)
                        }
                        for other in buffered {
                            if !broker.canSettle(other) {
                                dropped += 1
                                continue
                            }
                            if shutdown.isFired {
                                held.append(other)
                                continue
                            }
                            await handBack(other)
                        }
                        if !buffered.isEmpty {
                            logger.info("buffered deliveries handed back while a suspect runs alone", metadata: ["count": .stringConvertible(buffered.count)])
                        }
                        if shutdown.isFired {
                            held.append(delivery)
                            continue
                        }
                        if !broker.canSettle(delivery) {
                            // Its queue's channel went meanwhile: the
                            // broker has it back. The other queues go on.
                            dropped += 1
                            await broker.resumeConsuming()
                            continue
                        }
                        running += 1
                        if queueLimit != nil { runningIn[queue, default: 0] += 1 }
                        group.addTask {
                            await self.process(delivery, executor, chain)
                            return .taskFinished(queue: queue)
                        }
                        while running > 0 {
                            if collect(await group.next()) { self.cancelStragglers(&group, running: running) }
                        }
                        if !shutdown.isFired { await broker.resumeConsuming() }
                        continue
                    }
                    running += 1
                    if queueLimit != nil { runningIn[queue, default: 0] += 1 }
                    group.addTask {
                        await self.process(delivery, executor, chain)
                        return .taskFinished(queue: queue)
                    }
                }
            } catch {
                streamError = error
                noteBrokerClose(error)
                logger.error(
                    "delivery stream failed (connection lost); cancelling running tasks, the broker redelivers them",
                    metadata: ["error": "\(error)", "running": .stringConvertible(running)]
                )
                group.cancelAll()
            }

            for delivery in held {
                await requeue(delivery, reason: "not started before shutdown")
            }
            while running > 0 {
                if collect(await group.next()) { self.cancelStragglers(&group, running: running) }
            }
            // Results published whose acks wait for their confirms: each
            // ends (acked, or handed back) within a confirm's round trip,
            // or at once when the connection is gone. Not for ever: a
            // broker blocking publishes (a resource alarm) holds confirms
            // back; those deliveries then return to their queue when the
            // connection closes, and run again.
            let wait = configuration.shutdownGracePeriod.map(Seconds.clamped) ?? .seconds(60)
            if await !settlementsInFlight.waitUntilNone(timeout: max(wait, .seconds(5))) {
                logger.warning(
                    "results published but not confirmed in time: their deliveries go back to their queues and run again",
                    metadata: ["count": .stringConvertible(settlementsInFlight.count)])
            }
            // Only the shutdown watcher is left.
            group.cancelAll()
            return streamError
        }
    }

    /// How many deliveries of this message went before, unsettled: its
    /// quorum queue's `x-delivery-count` plus the
    /// ``MessageHeaders/priorDeliveries`` of a handed-back copy. Nil when
    /// the message carries neither (a classic queue's).
    package static func priorDeliveries(_ delivery: Delivery) -> Int? {
        // Any producer can write these headers: bounded, so that no value
        // can trap (a huge double, an overflowing sum).
        let bound = 1_000_000
        func number(_ value: HeaderValue?) -> Int? {
            switch value {
            case .int(let value)?: Int(min(max(value, 0), Int64(bound)))
            case .double(let value)? where value.isFinite: Int(min(max(value, 0), Double(bound)))
            case .string(let text)?: Int(text).map { min(max($0, 0), bound) }
            default: nil
            }
        }
        let headers = delivery.message.properties.headers
        let broker = number(headers["x-delivery-count"])
        let prior = number(headers[MessageHeaders.priorDeliveries])
        if broker == nil && prior == nil { return nil }
        return (broker ?? 0) + (prior ?? 0)
    }

    /// Gives an unstarted delivery back to its queue without spending its
    /// delivery count: a fresh copy (the same body and properties; the
    /// count so far in ``MessageHeaders/priorDeliveries``) published
    /// confirmed, then the original acknowledged. A requeue would raise
    /// the count on RabbitMQ 3.x quorum queues. The copy goes to the
    /// queue's tail. If the publish fails, the original is requeued.
    private func handBack(_ delivery: Delivery) async {
        guard delivery.discardedBodySize == nil else {
            // Its body was dropped unread (too large): no copy can be made.
            // Requeued, it comes back to be rejected to the broker's
            // dead-lettering.
            await requeue(delivery, reason: "its body was not read (too large); requeued while a suspect runs alone")
            return
        }
        var copy = delivery.message
        let prior = Self.priorDeliveries(delivery) ?? 0
        copy.properties.headers["x-delivery-count"] = nil
        copy.properties.headers[MessageHeaders.priorDeliveries] = prior > 0 ? .int(Int64(prior)) : nil
        do {
            try await broker.publish(copy, to: delivery.queue, mandatory: true)
        } catch {
            await requeue(delivery, reason: "could not be handed back while a suspect runs alone: \(error)")
            return
        }
        _ = await settle(delivery, metadata: ["queue": .string(delivery.queue)]) { try await $0.acknowledge(delivery) }
    }

    private func cancelStragglers(_ group: inout TaskGroup<ChildEvent>, running: Int) {
        configuration.logger.warning(
            "shutdown grace period over; cancelling running tasks, they will be requeued",
            metadata: ["running": .stringConvertible(running), "grace_period_s": .stringConvertible(configuration.shutdownGracePeriod.map(Seconds.double) ?? .infinity)]
        )
        group.cancelAll()
    }

    /// Waits for graceful shutdown, stops consuming, then reports the end of
    /// the grace period.
    private func watchForShutdown() async -> ChildEvent {
        guard await shutdown.wait() else { return .watcherStopped }
        // nil means "wait for ever": the longest sleep there is.
        let grace = configuration.shutdownGracePeriod.map(Seconds.clamped) ?? Seconds.maximum
        let deadline = ContinuousClock.now + grace
        configuration.logger.info("graceful shutdown: stop consuming", metadata: ["grace_period_s": .stringConvertible(Seconds.double(grace))])
        await broker.stopConsuming()
        do {
            try await Task.sleep(until: deadline, clock: .continuous)
        } catch {
            return .watcherStopped
        }
        return .deadline
    }

    /// Runs one delivery through the middleware and settles it.
    private func process(_ delivery: Delivery, _ runner: TaskRunner, _ chain: TaskMiddlewareChain) async {
        // Not a run of the task: it goes back to the broker until its time.
        if await deferIfNotDue(delivery) { return }
        _ = await chain.process(delivery) { delivery in
            await self.runAndSettle(delivery, runner)
        }
    }

    /// The worker's own step, inside every middleware: runs the task and
    /// applies its outcome to the delivery.
    private func runAndSettle(_ delivery: Delivery, _ runner: TaskRunner) async -> TaskReport {
        let start = ContinuousClock.now
        var execution = await runner.execute(delivery, span: WorkerSpan.current) { [self] in
            try await self.acknowledgeOnStart(delivery)
        }
        let acknowledgedOnStart = execution.acknowledgedOnStart
        defer { if acknowledgedOnStart { forgetAcknowledgedOnStart(delivery) } }
        let outcome = execution.outcome
        let result = outcome.result
        let metadata: @Sendable (String) -> Logger.Metadata = { status in
            LoggingTaskMiddleware.metadata(result, queue: delivery.queue, status: status, elapsed: ContinuousClock.now - start)
        }
        func report(settled: Bool, retryDelay: Duration? = nil) -> TaskReport {
            TaskReport(delivery: delivery, outcome: outcome, isSettled: settled, retryDelay: retryDelay, duration: ContinuousClock.now - start)
        }

        /// A result too large to send: the task fails with
        /// ``ResultTooLargeError`` (error result, dead letter) instead.
        func oversize(_ error: ResultTooLargeError) async -> TaskReport {
            let (failed, settled) = await settleOversizeResult(outcome, error, for: delivery, metadata: metadata) { failed in
                // What follows a failed task: a Celery chain's failure and
                // errbacks, a workflow's next move.
                var failedExecution = execution
                failedExecution.outcome = failed
                guard await self.publishFollowUps(for: delivery, outcome: failed) else { return false }
                return await self.continueWorkflow(failedExecution, for: delivery, metadata: metadata("error"))
            }
            return TaskReport(delivery: delivery, outcome: failed, isSettled: settled, retryDelay: nil, duration: ContinuousClock.now - start)
        }

        // What settles the delivery once everything published for it is
        // confirmed: acknowledge, or reject to the broker's dead-lettering
        // (a body dropped unread).
        var rejectToBroker = false
        var retryDelay: Duration?
        if case .completed(let completed) = outcome, execution.deduplicated, !execution.recorded,
           completed.taskName != WorkflowContext.startTaskName, let store = configuration.workflowStore {
            // Recorded first, even when the connection is gone: a
            // redelivery of this uuid is then acknowledged without running
            // again (its result sent from the record; a workflow step's
            // follow-ups done again from it, idempotently). A store that is
            // down costs the deduplication of this one task, not a rerun.
            // Out of this task's cancellation: a lost connection cancels
            // the running tasks, and a cancelled GRDB access throws before
            // writing, which left tasks that had run to their end
            // unrecorded, to run again on their redelivery (#17).
            do {
                let uuid = completed.uuid, returning = completed.returning ?? .null
                try await Task { try await store.finishStep(uuid, returning: returning) }.value
                execution.recorded = true
            } catch {
                var fields = metadata("success")
                fields["error"] = .string(LogText.sanitized(String(describing: error)))
                configuration.logger.warning("could not record the task's success for deduplication", metadata: fields)
            }
        }
        if case .cancelled = outcome {
        } else if !execution.acknowledgedOnStart, !broker.canSettle(delivery) {
            // The connection or the delivery's channel was lost while the
            // task ran (the broker's consumer_timeout closes the channel):
            // the broker has requeued the delivery, and its redelivery
            // runs the task and publishes what follows. Publishing now
            // would double it.
            configuration.logger.warning(
                "task ended after its delivery's connection or channel closed; nothing published for it, the broker redelivers it",
                metadata: metadata(report(settled: false).status))
            return report(settled: false)
        }
        switch outcome {
        case .cancelled where execution.expiredBeforeStart:
            await requeue(
                delivery, reason: "waited past its consumer_timeout deadline before it started (lower the prefetch for long tasks)",
                metadata: metadata("cancel"))
            return report(settled: false)
        case .cancelled where execution.acknowledgedOnStart:
            await republishCancelled(delivery, metadata: metadata("cancel"))
            return report(settled: false)
        case .cancelled:
            await requeue(delivery, reason: "cancelled by the worker", metadata: metadata("cancel"))
            return report(settled: false)
        case .completed, .cancelledByTask:
            let status = if case .completed = outcome { "success" } else { "cancel" }
            if delivery.message.properties.replyTo?.isEmpty == false, !execution.acknowledgedOnStart,
               !execution.deduplicated, execution.workflow == nil, Self.followUps(for: delivery, outcome: outcome).isEmpty {
                // Nothing but the result to send: its delivery is acked
                // when the broker confirms it, without holding this slot.
                switch prepareReply(result, for: delivery) {
                case .reply(let reply, let replyTo):
                    let elapsed = ContinuousClock.now - start
                    await publishResultThenAcknowledge(reply, to: replyTo, outcome: outcome, for: delivery) {
                        LoggingTaskMiddleware.metadata(result, queue: delivery.queue, status: status, elapsed: elapsed)
                    }
                    return report(settled: true)
                case .tooLarge(let error):
                    return await oversize(error)
                case .none:
                    break
                }
            }
            switch await publishResult(result, for: delivery, metadata: { metadata(status) }) {
            case .requeued: return report(settled: false)
            case .tooLarge(let error): return await oversize(error)
            case .published: break
            }
        case .retry(_, _, let delay) where execution.deferral != nil:
            // Another delivery of this workflow step is running: checked
            // again later, no attempt spent.
            let settled = await deferBusyStep(delivery, delay: delay, metadata: metadata("retry"))
            return report(settled: settled, retryDelay: settled ? delay : nil)
        case .retry(_, let failure, let delay):
            guard let applied = await publishRetry(delivery, failure: failure, uuid: result.uuid, attempt: result.retry + 1, delay: delay,
                                                            transient: execution.transientRetry, metadata: metadata("retry"))
            else { return report(settled: false) }
            retryDelay = applied
        case .failed(_, let failure), .rejected(_, let failure):
            switch await publishResult(result, failure: failure, for: delivery, metadata: { metadata("error") }) {
            case .requeued: return report(settled: false)
            case .tooLarge(let error) where delivery.discardedBodySize == nil: return await oversize(error)
            case .tooLarge, .published: break
            }
            if delivery.discardedBodySize != nil {
                // The body was dropped unread (too large to hold): the
                // broker dead-letters the intact original on rejection.
                rejectToBroker = true
            } else {
                guard await deadLetter(delivery, failure: failure, uuid: result.uuid, attempts: result.retry + 1,
                                       workflowID: execution.workflow?.id, metadata: metadata("error"))
                else { return report(settled: false) }
            }
        }
        // The tasks that follow this one (a Celery chain, callbacks,
        // errbacks), confirmed before the ack: a crash in between publishes
        // them again, under the same task ids.
        guard await publishFollowUps(for: delivery, outcome: outcome) else { return report(settled: false) }
        if execution.deduplicated, !execution.halted, !execution.recorded, execution.deferral == nil,
           let store = configuration.workflowStore {
            switch outcome {
            case .failed, .rejected, .cancelledByTask, .retry, .cancelled:
                // Not run to success: a later delivery of the uuid (a
                // duplicate, a replay) must not wait for it.
                try? await store.releaseStep(result.uuid)
            default:
                break
            }
        }
        // A workflow step's follow-ups (docs/workflows.md): its store calls
        // and the messages of what comes next, confirmed before the ack.
        let continuation = await continueWorkflowStep(execution, for: delivery, metadata: metadata(report(settled: false).status))
        if case .requeued = continuation { return report(settled: false) }
        let status = report(settled: false).status
        let rejecting = rejectToBroker
        let settled = await settle(delivery, metadata: metadata(status)) { broker in
            if rejecting { try await broker.reject(delivery, requeue: false) } else { try await broker.acknowledge(delivery) }
        }
        if case .refused(let failure) = continuation {
            // Refused and dead-lettered: reported (logged, counted,
            // recorded) as failed with the refusal, never as a success.
            return TaskReport(
                delivery: delivery, outcome: Self.refusedOutcome(outcome, failure), isSettled: settled, retryDelay: nil,
                duration: ContinuousClock.now - start)
        }
        return report(settled: settled, retryDelay: settled ? retryDelay : nil)
    }
}
