import Foundation
import Logging
import Synchronization
import Tracing

/// Sends tasks through any ``Broker`` and receives their results.
///
/// The client owns a private reply queue, created on the first send, and a
/// background task reading it; results are matched to their ``TaskHandle``
/// by correlation id (the task uuid). Many concurrent sends and waits are
/// fine. Call ``close()`` when done: it stops the reader tasks (which keep
/// the client alive until then). The broker stays the caller's:
/// ``close()`` does not close it.
///
/// A send whose connection was lost is retried (``PublishRetryPolicy``)
/// through a new reply queue: the old one died with its connection, and the
/// results of the tasks sent through it cannot arrive any more (their
/// handles throw ``TaskClientError`` `.replyQueueLost`); tasks sent through
/// the new one are not affected.
///
/// ```swift
/// let client = TaskClient(broker: broker)
/// let sum = try await client.send(Tasks.add, 2, 3).value(timeout: .seconds(5))   // an Int, 5
/// // By name, for dynamic use: a TaskHandle<JSONValue>.
/// let handle = try await client.send("add", args: [2, 3])
/// let result = try await handle.result(timeout: .seconds(5))   // result.returning == 5
/// ```
///
/// In a long-running process, put the client in a `ServiceGroup` after its
/// broker; for a bounded piece of work,
/// ``withClient(broker:app:logger:tracer:publishRetry:batchWindow:middleware:resultStore:_:)``
/// closes it on every exit path.
///
/// Each send is traced: see ``send(_:args:kwargs:queue:priority:)``.
public final class TaskClient: Sendable {
    /// A reply queue and its reader. The id tells sessions apart, so that
    /// the end of an old one touches only what was sent through it.
    private struct ReplySession {
        var id: Int
        var name: String
        var reader: Task<Void, Never>
    }

    /// A reply session being set up or in use.
    private struct SessionSetup {
        var id: Int
        var task: Task<ReplySession, any Error>
    }

    /// A task waiting for its result, and the reply session its message
    /// named in `reply_to`.
    private struct PendingReply {
        var slot: ReplySlot
        var session: Int
    }

    private struct State {
        /// The reply session new sends use; shared by concurrent sends.
        var current: SessionSetup?
        /// Every session whose reader may still run, the current one
        /// included: a session replaced after a lost publish keeps reading
        /// until its queue ends (its results may still come) or ``close()``.
        var sessions: [Int: Task<ReplySession, any Error>] = [:]
        /// The readers of those sessions, for deinit (which cannot await a
        /// session's setup to reach its reader).
        var readers: [Int: Task<Void, Never>] = [:]
        var nextSession = 0
        var pending: [String: PendingReply] = [:]
        var declaredQueues: Set<String> = []
        var closed = false
    }

    private let broker: any Broker
    private let app: TaskApp?
    private let logger: Logger
    private let configuredTracer: (any Tracer)?
    private let publishRetry: PublishRetryPolicy
    /// Tasks of a batch handed to the broker at once.
    public let batchWindow: Int
    private let middleware: [any TaskClientMiddleware]
    /// Where ``storedRecord(of:)`` and its siblings read; nil: none.
    public let resultStore: (any ResultStore)?
    /// What the client and its reply-queue readers share. The readers hold
    /// this, not the client, so that a client dropped without ``close()``
    /// is released (and its deinit stops them).
    private final class Shared: Sendable {
        let state = Mutex(State())
    }
    private let shared = Shared()

    /// - Parameters:
    ///   - app: when given, a task sent without a queue goes to the queue
    ///     it was registered with (``TaskOptions/queue``); the client
    ///     never runs its handlers.
    ///   - logger: for retried sends, dropped and unreadable results (at
    ///     `warning` and `debug`).
    ///   - tracer: traces the sends; nil (the default) means the tracer
    ///     the process bootstrapped (`InstrumentationSystem.tracer`, a
    ///     no-op unless an app bootstrapped one), looked up at each send.
    ///   - publishRetry: how a send whose connection was lost is retried
    ///     (default: 4 tries, 0.2 s, 0.4 s, 0.8 s apart).
    ///   - batchWindow: how many tasks of one ``send(batch:)`` are handed
    ///     to the broker at once (default 8192); the broker connection's
    ///     confirm window bounds how many are unconfirmed on the wire.
    ///   - middleware: run in order on every outgoing task before it is
    ///     published (headers, routing); see ``TaskClientMiddleware``.
    ///   - resultStore: where the workers record results (``ResultStore``),
    ///     for ``storedResult(of:timeout:)`` and
    ///     ``storedValue(of:uuid:timeout:)``: the results of tasks whose
    ///     reply this client never saw (sent by an earlier run, or without
    ///     a reply). The client does not close it.
    public init(
        broker: any Broker,
        app: TaskApp? = nil,
        logger: Logger = Logger(label: "qtasks.client"),
        tracer: (any Tracer)? = nil,
        publishRetry: PublishRetryPolicy = PublishRetryPolicy(),
        batchWindow: Int = 8192,
        middleware: [any TaskClientMiddleware] = [],
        resultStore: (any ResultStore)? = nil
    ) {
        self.resultStore = resultStore
        self.broker = broker
        self.app = app
        self.logger = logger
        self.configuredTracer = tracer
        self.publishRetry = publishRetry
        self.batchWindow = batchWindow
        self.middleware = middleware
    }

    /// The tracer the sends use.
    var tracer: any Tracer { configuredTracer ?? InstrumentationSystem.tracer }

    /// Sends a task with arguments given as JSON values.
    ///
    /// The message gets a new uuid (also its `message_id` and
    /// `correlation_id`), `created_at` now, `reply_to` the client's reply
    /// queue, and is persistent. The queue is declared (with its
    /// dead-letter queue) on the first send to it, so that a message to a
    /// queue no worker declared yet is not dropped. Returns once the broker
    /// confirmed the message.
    ///
    /// A lost connection is retried by the client's ``PublishRetryPolicy``,
    /// with the same uuid and a new reply queue: should the lost try have
    /// reached the broker after all, the task runs twice under one uuid
    /// (at-least-once).
    ///
    /// Traced as a span `send <task name>` of kind `producer`, a child of
    /// the caller's `ServiceContext`, with OpenTelemetry's messaging
    /// attributes (`messaging.system` `rabbitmq`,
    /// `messaging.destination.name` the queue, `messaging.message.id` the
    /// uuid, `messaging.operation.type` `send`) and `qtasks.task.name`. Its
    /// context goes into the message's headers (W3C `traceparent` with
    /// swift-otel), so that the worker's span is its child; a failed send
    /// is recorded on it as an error, each retry as an event `retry`.
    ///
    /// - Parameters:
    ///   - queue: the task queue; nil (the default) means the task's
    ///     registered queue when the client was given the app
    ///     (``TaskOptions/queue``), else `"default"`.
    ///   - priority: the QTasks priority (lower runs first; default 0),
    ///     written in the body; on a priority queue also the AMQP priority
    ///     property, through ``PriorityMapping`` with the queue's
    ///     `x-max-priority` (``PriorityQueueing``).
    /// - Throws: ``BrokerError`` when declaring or publishing fails (after
    ///   the retries, for a lost connection), ``TaskClientError`` `.closed`
    ///   after ``close()``, `CancellationError` when cancelled while
    ///   waiting to retry.
    public func send(
        _ taskName: String,
        args: [JSONValue] = [],
        kwargs: [String: JSONValue] = [:],
        queue: String? = nil,
        priority: Int? = nil
    ) async throws -> TaskHandle<JSONValue> {
        let request = TaskRequest(taskName, args: args, kwargs: kwargs, queue: queue, priority: priority)
        return try handle(for: try await send(try await prepare(request), expectsReply: true))
    }

    /// Sends a task whose result nobody will read: its message has no
    /// `reply_to`, so the worker publishes no result (and logs no dropped
    /// one) once this client is gone, and the client keeps nothing for it.
    ///
    /// Otherwise as ``send(_:args:kwargs:queue:priority:)``: a new uuid,
    /// the queue declared on first use, the publish confirmed and, on a
    /// lost connection, retried with the same uuid; traced alike.
    ///
    /// - Returns: the task's uuid, name and queue; nothing to wait for.
    /// - Throws: as ``send(_:args:kwargs:queue:priority:)``.
    @discardableResult
    public func sendWithoutReply(
        _ taskName: String,
        args: [JSONValue] = [],
        kwargs: [String: JSONValue] = [:],
        queue: String? = nil,
        priority: Int? = nil
    ) async throws -> SentTask {
        let request = TaskRequest(taskName, args: args, kwargs: kwargs, queue: queue, priority: priority)
        return try await send(try await prepare(request), expectsReply: false).sent
    }

    /// Sends many tasks, pipelined: ``batchWindow`` at a time are handed to
    /// the broker in one ``Broker/publish(batch:)`` (for RabbitMQ, one hop
    /// to the publishing connection, which keeps its confirm window full).
    /// Returns once every task was confirmed, with their handles in the
    /// order of `requests`.
    ///
    /// Each task is sent as ``send(_:args:kwargs:queue:priority:)`` sends
    /// one: its own uuid, its own span, a lost connection retried with the
    /// same uuid (at-least-once). The queues are declared once, before the
    /// first publish.
    ///
    /// - Throws: ``BatchSendError`` when a send failed for good: no further
    ///   sends start, those under way finish, and the error holds the
    ///   handles of the tasks that were sent (their results still arrive)
    ///   and the first error.
    public func send(batch requests: [TaskRequest]) async throws -> [TaskHandle<JSONValue>] {
        try await sendBatch(requests, as: JSONValue.self)
    }

    /// Sends many tasks without `reply_to`, pipelined as
    /// ``send(batch:)`` does; returns once every one was confirmed.
    ///
    /// - Throws: `BatchSendError<NoResult>` (its `sent` holds the tasks
    ///   that were sent, its `handles` is empty).
    @discardableResult
    public func sendWithoutReply(batch requests: [TaskRequest]) async throws -> [SentTask] {
        try await sendBatchWithoutReply(requests)
    }

    /// A task published and confirmed, and its result's slot when a reply
    /// is expected.
    struct Published: Sendable {
        var sent: SentTask
        var slot: ReplySlot?
    }

    /// A task ready to publish: its message and what the middleware made
    /// of its routing and headers.
    struct Prepared: Sendable {
        var message: TaskMessage
        var outgoing: OutgoingTask
    }

    func handle<Output>(for published: Published) throws -> TaskHandle<Output> {
        // Always a slot when a reply is expected.
        return TaskHandle(uuid: published.sent.uuid, taskName: published.sent.taskName, queue: published.sent.queue, slot: published.slot!, client: self)
    }

    /// The queue the client's app registers `taskName` on, if any.
    func appQueue(for taskName: String?) -> String? {
        taskName.flatMap { app?.queue(for: $0) }
    }

    /// Makes the task's message and runs the client's middleware on it.
    func prepare(_ request: TaskRequest) async throws -> Prepared {
        let message = TaskMessage(taskName: request.taskName, args: request.args, kwargs: request.kwargs, priority: request.priority ?? 0)
        var outgoing = OutgoingTask(
            uuid: message.uuid, taskName: message.taskName,
            queue: request.queue ?? app?.queue(for: request.taskName) ?? "default",
            priority: request.priority, headers: [:])
        for middleware in middleware {
            try await middleware.willSend(&outgoing)
        }
        guard !outgoing.queue.isEmpty else {
            throw TaskClientError(.invalidQueue, "task '\(request.taskName)' has an empty queue name", uuid: message.uuid)
        }
        var prepared = Prepared(message: message, outgoing: outgoing)
        // The body carries the priority too: a middleware may have set it.
        prepared.message.priority = outgoing.priority ?? 0
        return prepared
    }

    /// Publishes one prepared task, traced.
    func send(_ prepared: Prepared, expectsReply: Bool) async throws -> Published {
        let (task, outgoing) = (prepared.message, prepared.outgoing)
        let slot = try await traced(task, queue: outgoing.queue) { span, tracer in
            try await self.publish(
                task, queue: outgoing.queue, priority: outgoing.priority, headers: outgoing.headers,
                expectsReply: expectsReply, span: span, tracer: tracer)
        }
        return Published(sent: SentTask(uuid: task.uuid, taskName: task.taskName, queue: outgoing.queue), slot: slot)
    }

    /// Publishes the tasks with at most ``batchWindow`` unconfirmed at once.
    func sendBatch(_ requests: [TaskRequest], expectsReply: Bool) async throws -> [Published] {
        var prepared: [Prepared] = []
        prepared.reserveCapacity(requests.count)
        for request in requests {
            prepared.append(try await prepare(request))
        }
        // Declared once each up front: a thousand concurrent first sends to
        // one queue would each declare it.
        for queue in Set(prepared.map(\.outgoing.queue)).sorted() {
            try await declareIfNeeded(queue)
        }
        // Chunks of the batch window, each handed to the broker at once
        // (one hop to its connection, pipelined confirms). A publish lost
        // with its connection is sent again alone, by the retrying path.
        var sent: [Published] = []
        sent.reserveCapacity(prepared.count)
        var firstError: (any Error)?
        let window = max(1, batchWindow)
        var start = 0
        while start < prepared.count, firstError == nil {
            let chunk = prepared[start..<min(start + window, prepared.count)]
            start += chunk.count
            let outcomes: [Result<Published, any Error>]
            do {
                outcomes = try await publishChunk(chunk, expectsReply: expectsReply)
            } catch {
                outcomes = chunk.map { _ in .failure(error) }
            }
            for (task, outcome) in zip(chunk, outcomes) {
                switch outcome {
                case .success(let published):
                    sent.append(published)
                case .failure(let error) where firstError == nil && PublishRetryPolicy.isRetryable(error, afterLoss: false):
                    do {
                        sent.append(try await send(task, expectsReply: expectsReply))
                    } catch {
                        firstError = error
                    }
                case .failure(let error):
                    if firstError == nil { firstError = error }
                }
            }
        }
        if let firstError {
            throw PartialBatch(published: sent, unsent: prepared.count - sent.count, error: firstError)
        }
        return sent
    }

    /// Publishes a chunk of a batch in one ``Broker/publish(batch:)``, each
    /// task in a span of its own as ``send(_:expectsReply:)`` makes it.
    /// Returns each task's outcome, in order.
    private func publishChunk(_ chunk: ArraySlice<Prepared>, expectsReply: Bool) async throws -> [Result<Published, any Error>] {
        let session = expectsReply ? try await replySession() : nil
        let tracer = self.tracer
        var spans: [any Span] = []
        var publications: [Publication] = []
        var slots: [ReplySlot?] = []
        spans.reserveCapacity(chunk.count)
        publications.reserveCapacity(chunk.count)
        slots.reserveCapacity(chunk.count)
        for task in chunk {
            let span = startSpan(task.message, queue: task.outgoing.queue, tracer: tracer)
            var headers = task.outgoing.headers
            tracer.inject(span.context, into: &headers, using: HeaderInjector())
            spans.append(span)
            publications.append(Publication(
                message(task.message, queue: task.outgoing.queue, priority: task.outgoing.priority, headers: headers, replyTo: session?.name),
                to: task.outgoing.queue))
            slots.append(session.map { _ in ReplySlot() })
        }
        defer { for span in spans { span.end() } }
        // Registered before publishing: a fast worker may answer first.
        try shared.state.withLock { state in
            guard !state.closed else { throw TaskClientError(.closed, "the task client is closed") }
            guard let session else { return }
            guard state.sessions[session.id] != nil else {
                throw BrokerError(.connectionLost, "the reply queue '\(session.name)' ended before the tasks were published")
            }
            for (task, slot) in zip(chunk, slots) {
                state.pending[task.message.uuid] = PendingReply(slot: slot!, session: session.id)
            }
        }
        let outcomes: [Result<Void, any Error>]
        do {
            outcomes = try await broker.publish(batch: publications)
        } catch {
            if session != nil { for task in chunk { forget(task.message.uuid) } }
            throw error
        }
        var results: [Result<Published, any Error>] = []
        results.reserveCapacity(chunk.count)
        for (index, (task, outcome)) in zip(chunk, outcomes).enumerated() {
            switch outcome {
            case .success:
                let sent = SentTask(uuid: task.message.uuid, taskName: task.message.taskName, queue: task.outgoing.queue)
                results.append(.success(Published(sent: sent, slot: slots[index])))
            case .failure(let error):
                if session != nil { forget(task.message.uuid) }
                spans[index].recordError(error)
                spans[index].setStatus(SpanStatus(code: .error))
                results.append(.failure(error))
            }
        }
        return results
    }

    /// What ``sendBatch(_:expectsReply:)`` throws: made a
    /// ``BatchSendError`` of the caller's result type.
    struct PartialBatch: Error {
        var published: [Published]
        var unsent: Int
        var error: any Error
    }

    /// Sends a batch and gives it handles of `Output`; a partial batch
    /// becomes a ``BatchSendError``.
    func sendBatch<Output>(_ requests: [TaskRequest], as _: Output.Type) async throws -> [TaskHandle<Output>] {
        do {
            return try await sendBatch(requests, expectsReply: true).map { try handle(for: $0) }
        } catch let partial as PartialBatch {
            throw BatchSendError<Output>(
                sent: partial.published.map(\.sent), handles: try partial.published.map { try handle(for: $0) },
                unsent: partial.unsent, error: partial.error)
        }
    }

    /// Sends a batch without `reply_to`; a partial batch becomes a
    /// ``BatchSendError``.
    func sendBatchWithoutReply(_ requests: [TaskRequest]) async throws -> [SentTask] {
        do {
            return try await sendBatch(requests, expectsReply: false).map(\.sent)
        } catch let partial as PartialBatch {
            throw BatchSendError<NoResult>(
                sent: partial.published.map(\.sent), handles: [], unsent: partial.unsent, error: partial.error)
        }
    }

    /// Runs `body` in the span of a send.
    private func traced<Result>(
        _ task: TaskMessage, queue: String, _ body: (any Span, any Tracer) async throws -> Result
    ) async throws -> Result {
        let tracer = self.tracer
        let span = startSpan(task, queue: queue, tracer: tracer)
        defer { span.end() }
        do {
            return try await body(span, tracer)
        } catch {
            span.recordError(error)
            span.setStatus(SpanStatus(code: .error))
            throw error
        }
    }

    /// The span of one send, with OpenTelemetry's messaging attributes.
    private func startSpan(_ task: TaskMessage, queue: String, tracer: any Tracer) -> any Span {
        let span = tracer.startSpan("send \(task.taskName)", context: ServiceContext.current ?? .topLevel, ofKind: .producer)
        // A no-op span (no tracer bootstrapped) would still build the
        // attribute dictionary: a tenth of a send's CPU.
        if span.isRecording {
            span.updateAttributes { attributes in
                attributes[TracingAttributes.system] = TracingAttributes.rabbitMQ
                attributes[TracingAttributes.destinationName] = queue
                attributes[TracingAttributes.messageID] = task.uuid
                attributes[TracingAttributes.operationType] = "send"
                attributes[TracingAttributes.operationName] = "publish"
                attributes[TracingAttributes.taskName] = task.taskName
            }
        }
        return span
    }

    /// Publishes the task, retrying a lost connection by ``publishRetry``.
    /// Returns the slot its result will land in, when a reply is expected.
    private func publish(
        _ task: TaskMessage, queue: String, priority: Int?, headers: [String: HeaderValue], expectsReply: Bool,
        span: any Span, tracer: any Tracer
    ) async throws -> ReplySlot? {
        var headers = headers
        tracer.inject(span.context, into: &headers, using: HeaderInjector())
        var attempt = 1
        var afterLoss = false
        while true {
            var session: ReplySession?
            do {
                if expectsReply { session = try await replySession() }
                return try await publishOnce(task, queue: queue, priority: priority, headers: headers, session: session)
            } catch {
                guard PublishRetryPolicy.isRetryable(error, afterLoss: afterLoss), attempt < publishRetry.maxAttempts else {
                    throw error
                }
                afterLoss = true
                // The reply queue died with the connection, or will: the
                // retry names a new one. Concurrent sends that used the
                // same session replace it once.
                if let session { retire(session.id) }
                let delay = publishRetry.backoff.delay(forRetry: attempt)
                logger.warning(
                    "send failed: the connection was lost; retrying",
                    metadata: [
                        "task": .string(task.taskName), "uuid": .string(task.uuid), "queue": .string(queue),
                        "attempt": "\(attempt)", "delay_s": "\(Seconds.double(delay))", "error": "\(error)",
                    ])
                span.addEvent(SpanEvent(name: "retry", attributes: ["qtasks.publish.attempt": .int64(Int64(attempt + 1))]))
                attempt += 1
                try await Task.sleep(for: delay)
            }
        }
    }

    /// One try: declares the queue if needed and publishes the task, its
    /// `reply_to` the session's queue (none without a session).
    private func publishOnce(
        _ task: TaskMessage, queue: String, priority: Int?, headers: [String: HeaderValue], session: ReplySession?
    ) async throws -> ReplySlot? {
        try await declareIfNeeded(queue)
        let message = message(task, queue: queue, priority: priority, headers: headers, replyTo: session?.name)
        // A new slot for each try: one that the end of an earlier try's
        // reply queue failed must not be handed out.
        let slot = session.map { _ in ReplySlot() }
        try shared.state.withLock { state in
            guard !state.closed else { throw TaskClientError(.closed, "the task client is closed") }
            guard let slot, let session else { return }
            // The queue ended since this try took it (its connection was
            // lost): its reader already failed the tasks it had, and this
            // one would wait in vain. Retried like a lost publish.
            guard state.sessions[session.id] != nil else {
                throw BrokerError(.connectionLost, "the reply queue '\(session.name)' ended before the task was published")
            }
            // Registered before publishing: a fast worker may answer before
            // `publish` returns.
            state.pending[task.uuid] = PendingReply(slot: slot, session: session.id)
        }
        do {
            try await broker.publish(message, to: queue, mandatory: true)
        } catch {
            if slot != nil { forget(task.uuid) }
            throw error
        }
        return slot
    }

    /// The task's message: persistent JSON, its uuid as `message_id` and
    /// `correlation_id` (docs/wire-format.md).
    private func message(
        _ task: TaskMessage, queue: String, priority: Int?, headers: [String: HeaderValue], replyTo: String?
    ) -> Message {
        var task = task
        var replyTo = replyTo
        if task.workflow?.start != nil {
            // A workflow's starting message: its result is not wanted, the
            // workflow's is, under the workflow's uuid.
            task.workflow?.replyTo = replyTo
            replyTo = nil
        }
        return Message(
            body: task.jsonBytes(),
            properties: MessageProperties(
                contentType: "application/json",
                persistent: true,
                priority: amqpPriority(for: priority, queue: queue),
                correlationID: task.uuid,
                replyTo: replyTo,
                messageID: task.uuid,
                timestamp: UInt64(max(0, task.createdAt)),
                headers: headers
            )
        )
    }

    /// Declares a task queue (with its dead-letter queue) the first time
    /// this client sends to it, so that a message to a queue no worker
    /// declared yet is not dropped.
    private func declareIfNeeded(_ queue: String) async throws {
        if !shared.state.withLock({ $0.declaredQueues.contains(queue) }) {
            try await broker.declareTaskQueue(queue)
            shared.state.withLock { _ = $0.declaredQueues.insert(queue) }
        }
    }

    /// Sends a task with positional arguments of any `Encodable` types:
    /// `client.send("add", 2, 3)`.
    ///
    /// - Throws: `EncodingError` for an argument that does not encode, and
    ///   what ``send(_:args:kwargs:queue:priority:)`` throws.
    public func send<First: Encodable, each Rest: Encodable>(
        _ taskName: String,
        _ first: First,
        _ rest: repeat each Rest,
        queue: String? = nil,
        priority: Int? = nil
    ) async throws -> TaskHandle<JSONValue> {
        var args = [try JSONValue(encoding: first)]
        for argument in repeat each rest {
            args.append(try JSONValue(encoding: argument))
        }
        return try await send(taskName, args: args, queue: queue, priority: priority)
    }

    /// Stops reading results: waiting handles throw ``TaskClientError``
    /// `.closed`, and further sends too. Does not close the broker.
    public func close() async {
        let (sessions, slots) = shared.state.withLock { state -> ([Task<ReplySession, any Error>], [ReplySlot]) in
            state.closed = true
            defer {
                state.current = nil
                state.sessions = [:]
                state.readers = [:]
                state.pending = [:]
            }
            return (Array(state.sessions.values), state.pending.values.map(\.slot))
        }
        let error = TaskClientError(.closed, "the task client is closed")
        for slot in slots { slot.fail(error) }
        for session in sessions {
            session.cancel()
            (try? await session.value)?.reader.cancel()
        }
    }

    /// A client dropped without ``close()``: its reply-queue readers stop
    /// (their queues end with their broker connection), its waiting
    /// handles (none can exist: each holds the client) have nothing left.
    deinit {
        let (sessions, readers) = shared.state.withLock { state in
            state.closed = true
            return (Array(state.sessions.values), Array(state.readers.values))
        }
        for session in sessions { session.cancel() }
        for reader in readers { reader.cancel() }
    }

    /// Drops a task's slot: its handle is gone, nobody will read the result.
    func forget(_ uuid: String) {
        shared.state.withLock { _ = $0.pending.removeValue(forKey: uuid) }
    }

    /// The AMQP priority property for a QTasks priority: set only for a
    /// priority queue (``PriorityMapping``), and then always, the default
    /// priority 0 included (a message without it would rank lowest).
    private func amqpPriority(for priority: Int?, queue: String) -> UInt8? {
        guard let broker = broker as? any PriorityQueueing, let maxPriority = broker.maxPriority(forQueue: queue) else {
            return nil
        }
        return PriorityMapping(maxPriority: maxPriority).amqpPriority(for: priority ?? 0)
    }

    /// The current reply session, set up on first use.
    private func replySession() async throws -> ReplySession {
        let setup = try shared.state.withLock { state -> SessionSetup in
            guard !state.closed else { throw TaskClientError(.closed, "the task client is closed") }
            if let current = state.current { return current }
            state.nextSession += 1
            let id = state.nextSession
            let (broker, shared, logger) = (self.broker, self.shared, self.logger)
            let task = Task<ReplySession, any Error> {
                let queue = try await broker.makeReplyQueue()
                // Holds what the client shares, not the client: runs until
                // the queue ends, `close()`, or the client's deinit.
                let reader = Task<Void, Never> { await Self.read(queue, session: id, shared: shared, logger: logger) }
                let open = shared.state.withLock { state in
                    guard !state.closed else { return false }
                    state.readers[id] = reader
                    return true
                }
                if !open { reader.cancel() }
                return ReplySession(id: id, name: queue.name, reader: reader)
            }
            let setup = SessionSetup(id: id, task: task)
            state.current = setup
            state.sessions[id] = task
            return setup
        }
        do {
            return try await setup.task.value
        } catch {
            // Let the next send try again rather than repeat this failure.
            shared.state.withLock { state in
                if state.current?.id == setup.id { state.current = nil }
                state.sessions[setup.id] = nil
            }
            throw error
        }
    }

    /// Makes the next send set up a new reply session, unless another send
    /// already did: session `id` is presumed dead (its connection was lost).
    /// Its reader goes on until its queue ends, failing then only the
    /// tasks sent through it; should the queue be alive after all, their
    /// results still arrive.
    private func retire(_ id: Int) {
        shared.state.withLock { state in
            if state.current?.id == id { state.current = nil }
        }
    }

    /// Reads the reply queue of session `id` until it ends, handing results
    /// to their slots.
    private static func read(_ queue: ReplyQueue, session id: Int, shared: Shared, logger: Logger) async {
        let decoder = JSONDecoder()
        do {
            for try await message in queue.messages {
                let result: TaskResult
                do {
                    result = try decoder.decode(TaskResult.self, from: Data(message.body))
                } catch {
                    logger.warning("unreadable result dropped", metadata: ["error": "\(DecodingErrorText.describe(error))"])
                    continue
                }
                let correlationID = message.properties.correlationID ?? result.uuid
                // By uuid whatever the session: a result that comes through
                // an older queue (a lost try had reached the broker after
                // all) is the same task's.
                if let slot = shared.state.withLock({ $0.pending[correlationID]?.slot }) {
                    slot.deliver(result, headers: message.properties.headers)
                } else {
                    logger.debug("result for no waiting task dropped", metadata: ["correlation_id": .string(correlationID)])
                }
            }
        } catch {
            // After `close()` the end of the queue is expected, not news.
            let level: Logger.Level = shared.state.withLock { $0.closed } ? .debug : .warning
            logger.log(level: level, "reply queue failed", metadata: ["queue": .string(queue.name), "error": "\(error)"])
        }
        guard !Task.isCancelled else { return }
        // Results for tasks sent through this queue can no longer arrive;
        // the next send makes a new reply queue unless one replaced this
        // already. Tasks sent through another queue are not this one's.
        let slots = shared.state.withLock { state -> [ReplySlot] in
            if state.current?.id == id { state.current = nil }
            state.sessions[id] = nil
            state.readers[id] = nil
            return state.pending.values.filter { $0.session == id }.map(\.slot)
        }
        for slot in slots {
            slot.fail(TaskClientError(.replyQueueLost, "the reply queue '\(queue.name)' ended before the result arrived"))
        }
    }
}
