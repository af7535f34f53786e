import Foundation
import Logging
import Synchronization
import Tracing

/// Sends tasks through any ``Broker`` and receives their results.
///
/// The client owns one private reply queue, created on the first send, and
/// one background task reading it; results are matched to their
/// ``TaskHandle`` by correlation id (the task uuid). Many concurrent sends
/// and waits are fine. Call ``close()`` when done: it stops the reader
/// task (which keeps the client alive until then). The broker stays the
/// caller's: ``close()`` does not close it.
///
/// ```swift
/// let client = TaskClient(broker: broker)
/// let handle = try await client.send("add", 2, 3)
/// let result = try await handle.result(timeout: .seconds(5))   // result.returning == 5
/// ```
///
/// Each send is traced: see ``send(_:args:kwargs:queue:priority:)``.
public final class TaskClient: Sendable {
    private struct ReplySession {
        var name: String
        var reader: Task<Void, Never>
    }

    private struct State {
        /// The reply queue being set up or in use; shared by concurrent
        /// first sends.
        var session: Task<ReplySession, any Error>?
        var slots: [String: ReplySlot] = [:]
        var declaredQueues: Set<String> = []
        var closed = false
    }

    private let broker: any Broker
    private let app: TaskApp?
    private let logger: Logger
    private let configuredTracer: (any Tracer)?
    private let state = Mutex(State())

    /// - Parameters:
    ///   - app: when given, a task sent without a queue goes to the queue
    ///     it was registered with (``TaskOptions/queue``); the client
    ///     never runs its handlers.
    ///   - logger: for dropped and unreadable results (at `debug` and
    ///     `warning`).
    ///   - tracer: traces the sends; nil (the default) means the tracer
    ///     the process bootstrapped (`InstrumentationSystem.tracer`, a
    ///     no-op unless an app bootstrapped one), looked up at each send.
    public init(
        broker: any Broker,
        app: TaskApp? = nil,
        logger: Logger = Logger(label: "qtasks.client"),
        tracer: (any Tracer)? = nil
    ) {
        self.broker = broker
        self.app = app
        self.logger = logger
        self.configuredTracer = tracer
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
    /// Traced as a span `send <task name>` of kind `producer`, a child of
    /// the caller's `ServiceContext`, with OpenTelemetry's messaging
    /// attributes (`messaging.system` `rabbitmq`,
    /// `messaging.destination.name` the queue, `messaging.message.id` the
    /// uuid, `messaging.operation.type` `send`) and `qtasks.task.name`. Its
    /// context goes into the message's headers (W3C `traceparent` with
    /// swift-otel), so that the worker's span is its child; a failed send
    /// is recorded on it as an error.
    ///
    /// - Parameters:
    ///   - queue: the task queue; nil (the default) means the task's
    ///     registered queue when the client was given the app
    ///     (``TaskOptions/queue``), else `"default"`.
    ///   - priority: the QTasks priority (lower runs first; default 0),
    ///     written in the body; on a priority queue also the AMQP priority
    ///     property, through ``PriorityMapping`` with the queue's
    ///     `x-max-priority` (``PriorityQueueing``).
    /// - Throws: ``BrokerError`` when declaring or publishing fails,
    ///   ``TaskClientError`` `.closed` after ``close()``.
    public func send(
        _ taskName: String,
        args: [JSONValue] = [],
        kwargs: [String: JSONValue] = [:],
        queue: String? = nil,
        priority: Int? = nil
    ) async throws -> TaskHandle {
        let queue = queue ?? app?.queue(for: taskName) ?? "default"
        let task = TaskMessage(taskName: taskName, args: args, kwargs: kwargs, priority: priority ?? 0)
        let tracer = self.tracer
        let span = tracer.startSpan("send \(taskName)", context: ServiceContext.current ?? .topLevel, ofKind: .producer)
        defer { span.end() }
        span.updateAttributes { attributes in
            attributes[TracingAttributes.system] = TracingAttributes.rabbitMQ
            attributes[TracingAttributes.destinationName] = queue
            attributes[TracingAttributes.messageID] = task.uuid
            attributes[TracingAttributes.operationType] = "send"
            attributes[TracingAttributes.operationName] = "publish"
            attributes[TracingAttributes.taskName] = taskName
        }
        do {
            return try await publish(task, queue: queue, priority: priority, trace: span.context, tracer: tracer)
        } catch {
            span.recordError(error)
            span.setStatus(SpanStatus(code: .error))
            throw error
        }
    }

    /// Declares the queue if needed and publishes the task with `trace` in
    /// its headers.
    private func publish(
        _ task: TaskMessage, queue: String, priority: Int?, trace: ServiceContext, tracer: any Tracer
    ) async throws -> TaskHandle {
        let replyTo = try await replySession().name
        if !state.withLock({ $0.declaredQueues.contains(queue) }) {
            try await broker.declareTaskQueue(queue)
            state.withLock { _ = $0.declaredQueues.insert(queue) }
        }
        var headers: [String: HeaderValue] = [:]
        tracer.inject(trace, into: &headers, using: HeaderInjector())
        let message = Message(
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
        let slot = ReplySlot()
        try state.withLock { state in
            guard !state.closed else { throw TaskClientError(.closed, "the task client is closed") }
            // Registered before publishing: a fast worker may answer before
            // `publish` returns.
            state.slots[task.uuid] = slot
        }
        do {
            try await broker.publish(message, to: queue, mandatory: true)
        } catch {
            forget(task.uuid)
            throw error
        }
        return TaskHandle(uuid: task.uuid, taskName: task.taskName, queue: queue, slot: slot, client: self)
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
    ) async throws -> TaskHandle {
        var args = [try JSONValue(encoding: first)]
        for argument in repeat each rest {
            args.append(try JSONValue(encoding: argument))
        }
        return try await send(taskName, args: args, queue: queue, priority: priority)
    }

    /// Stops reading results: waiting handles throw ``TaskClientError``
    /// `.closed`, and further sends too. Does not close the broker.
    public func close() async {
        let (session, slots) = state.withLock { state -> (Task<ReplySession, any Error>?, [ReplySlot]) in
            state.closed = true
            defer {
                state.session = nil
                state.slots = [:]
            }
            return (state.session, Array(state.slots.values))
        }
        let error = TaskClientError(.closed, "the task client is closed")
        for slot in slots { slot.fail(error) }
        if let session {
            session.cancel()
            (try? await session.value)?.reader.cancel()
        }
    }

    /// Drops a task's slot: its handle is gone, nobody will read the result.
    func forget(_ uuid: String) {
        state.withLock { _ = $0.slots.removeValue(forKey: uuid) }
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

    private func replySession() async throws -> ReplySession {
        let session = try state.withLock { state -> Task<ReplySession, any Error> in
            guard !state.closed else { throw TaskClientError(.closed, "the task client is closed") }
            if let session = state.session { return session }
            let broker = self.broker
            let session = Task<ReplySession, any Error> {
                let queue = try await broker.makeReplyQueue()
                // Holds the client until the queue ends or `close()`.
                let reader = Task<Void, Never> { await self.read(queue) }
                return ReplySession(name: queue.name, reader: reader)
            }
            state.session = session
            return session
        }
        do {
            return try await session.value
        } catch {
            // Let the next send try again rather than repeat this failure.
            state.withLock { state in
                if state.session == session { state.session = nil }
            }
            throw error
        }
    }

    /// Reads the reply queue until it ends, handing results to their slots.
    private func read(_ queue: ReplyQueue) async {
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
                if let slot = state.withLock({ $0.slots[correlationID] }) {
                    slot.deliver(result, headers: message.properties.headers)
                } else {
                    logger.debug("result for no waiting task dropped", metadata: ["correlation_id": .string(correlationID)])
                }
            }
        } catch {
            // After `close()` the end of the queue is expected, not news.
            let level: Logger.Level = state.withLock { $0.closed } ? .debug : .warning
            logger.log(level: level, "reply queue failed", metadata: ["queue": .string(queue.name), "error": "\(error)"])
        }
        guard !Task.isCancelled else { return }
        // Results for tasks sent through this queue can no longer arrive;
        // the next send makes a new reply queue.
        let slots = state.withLock { state -> [ReplySlot] in
            state.session = nil
            return Array(state.slots.values)
        }
        for slot in slots {
            slot.fail(TaskClientError(.replyQueueLost, "the reply queue '\(queue.name)' ended before the result arrived"))
        }
    }
}
