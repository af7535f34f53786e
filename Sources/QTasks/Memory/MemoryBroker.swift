import Foundation
import Synchronization

/// An in-process ``Broker`` for tests: FIFO queues, consumers with prefetch,
/// acknowledgements, reply queues; no persistence.
///
/// Follows RabbitMQ's semantics where tests can see them: a consumer gets
/// at most `prefetch` unacknowledged deliveries; a rejected-with-requeue
/// message goes back to the front of its queue and is delivered again with
/// `redelivered` true; a mandatory publish to a missing queue throws
/// `.unroutable` (a non-mandatory one is dropped); `close()` returns every
/// unacknowledged delivery to its queue. Rejecting without requeue drops the
/// message (the ``Worker`` publishes its own dead-letter copy first).
///
/// Inspection helpers (``messages(in:)``, ``unackedCount``, ...) let tests
/// check that nothing was lost.
/// Delayed publishes (``DelayedPublishing``, for retries) wait on a timer
/// and then enter their queue like any publish; ``delayedCount`` tells how
/// many are waiting.
public final class MemoryBroker: DelayedPublishing {
    private struct Consumer {
        var queues: [String]
        var prefetch: Int
        var unacked = 0
        /// Per-queue prefetch (``consume(_:)``), and what each holds.
        var queueLimits: [String: Int] = [:]
        var unackedIn: [String: Int] = [:]
        var active = true
        /// Paused by ``pauseConsuming()``: gets nothing until resumed.
        var paused = false
        /// Deliveries handed to its stream so far.
        var yielded = 0
        /// Where the next round-robin pass over `queues` starts.
        var cursor = 0
        var continuation: AsyncThrowingStream<Delivery, any Error>.Continuation
    }

    private struct Unacked {
        var message: Message
        var queue: String
        var consumer: UInt64
    }

    private struct State {
        var queues: [String: MemoryQueue] = [:]
        var consumers: [UInt64: Consumer] = [:]
        var unacked: [DeliveryToken: Unacked] = [:]
        var replyQueues: [String: AsyncThrowingStream<Message, any Error>.Continuation] = [:]
        var publishFailures: [String: BrokerError] = [:]
        var maxMessageBytes: Int?
        var nextConsumer: UInt64 = 0
        var nextTag: UInt64 = 0
        var nextReplyQueue = 0
        var closed = false
        var published = 0
        var delayed = 0
        var delayedMessages: [UUID: DelayedMessage] = [:]
    }

    /// A message waiting for its delay to pass (see ``delayedMessages``).
    public struct DelayedMessage: Sendable {
        public let message: Message
        public let queue: String
        /// The delay the publisher asked for.
        public let delay: Duration
    }

    private let state = Mutex(State())

    /// An empty broker: declare queues before publishing to them.
    public init() {}

    // MARK: Broker

    /// Declares `name` and `<name>.dlq`. Idempotent.
    ///
    /// - Throws: ``BrokerError`` `.closed` after ``close()``.
    public func declareTaskQueue(_ name: String) async throws {
        // As RabbitMQBroker: the same names are refused.
        try QueueNaming.checkBeforeDeclaring(name)
        try state.withLock { state in
            guard !state.closed else { throw Self.closedError }
            if state.queues[name] == nil { state.queues[name] = MemoryQueue() }
            let deadLetters = QueueNaming.deadLetterQueue(for: name)
            if state.queues[deadLetters] == nil { state.queues[deadLetters] = MemoryQueue() }
        }
    }

    /// - Throws: ``BrokerError`` `.refused` for a queue not declared,
    ///   `.closed` after ``close()``.
    public func consume(queues: [String], prefetch: Int) async throws -> AsyncThrowingStream<Delivery, any Error> {
        try await consume(queues: queues, prefetch: prefetch, queueLimits: [:])
    }

    /// Each queue with its own prefetch, as RabbitMQ's per-consumer
    /// prefetch does.
    ///
    /// - Throws: as ``consume(queues:prefetch:)``.
    public func consume(_ subscriptions: [QueueSubscription]) async throws -> AsyncThrowingStream<Delivery, any Error> {
        var limits: [String: Int] = [:]
        for subscription in subscriptions { limits[subscription.queue] = subscription.prefetch }
        return try await consume(
            queues: subscriptions.map(\.queue), prefetch: subscriptions.map(\.prefetch).reduce(0, +), queueLimits: limits)
    }

    private func consume(queues: [String], prefetch: Int, queueLimits: [String: Int]) async throws
        -> AsyncThrowingStream<Delivery, any Error>
    {
        let (stream, continuation) = AsyncThrowingStream.makeStream(of: Delivery.self, throwing: (any Error).self)
        let id = try state.withLock { state -> UInt64 in
            guard !state.closed else { throw Self.closedError }
            if let missing = queues.first(where: { state.queues[$0] == nil }) {
                throw BrokerError(.refused, "no queue '\(missing)'", replyCode: 404, replyText: "NOT_FOUND - no queue '\(missing)'")
            }
            state.nextConsumer += 1
            state.consumers[state.nextConsumer] = Consumer(
                queues: queues, prefetch: max(1, prefetch), queueLimits: queueLimits, continuation: continuation)
            Self.dispatch(&state)
            return state.nextConsumer
        }
        continuation.onTermination = { [weak self] _ in
            self?.state.withLock { state in state.consumers[id]?.active = false }
        }
        return stream
    }

    /// Stops handing deliveries to the newest consumer (the current
    /// ``consume(_:)`` stream) until ``resumeConsuming()``, as
    /// `RabbitMQBroker` cancels its consumers: its stream goes on and its
    /// deliveries can still be settled.
    ///
    /// - Returns: how many deliveries its stream was handed in all; nil
    ///   without an active consumer.
    public func pauseConsuming() async -> Int? {
        state.withLock { state in
            guard let id = state.consumers.keys.filter({ state.consumers[$0]!.active }).max() else { return nil }
            state.consumers[id]!.paused = true
            return state.consumers[id]!.yielded
        }
    }

    /// Hands deliveries to the paused consumers again.
    public func resumeConsuming() async {
        state.withLock { state in
            for id in state.consumers.keys { state.consumers[id]!.paused = false }
            Self.dispatch(&state)
        }
    }

    /// Ends every consumer stream after what it already buffered;
    /// their unacknowledged deliveries can still be settled.
    public func stopConsuming() async {
        let continuations = state.withLock { state in
            var stopped: [AsyncThrowingStream<Delivery, any Error>.Continuation] = []
            for id in state.consumers.keys where state.consumers[id]!.active {
                state.consumers[id]!.active = false
                stopped.append(state.consumers[id]!.continuation)
            }
            return stopped
        }
        for continuation in continuations { continuation.finish() }
    }

    /// - Throws: ``BrokerError`` `.unroutable` for a mandatory message to a
    ///   missing queue, `.messageTooLarge` for a body over
    ///   ``maxMessageBytes``, `.closed` after ``close()``, or the error set
    ///   with ``failPublishes(to:with:)``.
    public func publish(_ message: Message, to queue: String, mandatory: Bool) async throws {
        try state.withLock { state in
            guard !state.closed else { throw Self.closedError }
            if let failure = state.publishFailures[queue] { throw failure }
            if let limit = state.maxMessageBytes, message.body.count > limit {
                throw BrokerError(
                    .messageTooLarge, "message size \(message.body.count) is larger than max size \(limit)",
                    replyCode: 406, replyText: "PRECONDITION_FAILED - message size \(message.body.count) is larger than max size \(limit)",
                    maxMessageBytes: limit)
            }
            if let reply = state.replyQueues[queue] {
                state.published += 1
                reply.yield(message)
            } else if state.queues[queue] != nil {
                state.published += 1
                state.queues[queue]!.append(MemoryQueue.Entry(message: message, redelivered: false))
                Self.dispatch(&state)
            } else if mandatory {
                throw BrokerError(.unroutable, "no queue '\(queue)' for a mandatory message", replyCode: 312, replyText: "NO_ROUTE")
            }
        }
    }

    /// Publishes `message` to `queue` after `delay` (exactly, on a timer;
    /// a negative delay is none, one over about 31 years is that long);
    /// returns `delay`. A message still waiting when the broker
    /// closes is dropped.
    ///
    /// - Throws: ``BrokerError`` `.unroutable` for a missing queue, `.closed`
    ///   after ``close()``, or the error set with ``failPublishes(to:with:)``.
    @discardableResult
    public func publish(_ message: Message, to queue: String, after delay: Duration) async throws -> Duration {
        try state.withLock { state in
            guard !state.closed else { throw Self.closedError }
            if let failure = state.publishFailures[queue] { throw failure }
            guard state.queues[queue] != nil else {
                throw BrokerError(.unroutable, "no queue '\(queue)' for a delayed message", replyCode: 312, replyText: "NO_ROUTE")
            }
            state.delayed += 1
        }
        let id = UUID()
        state.withLock { $0.delayedMessages[id] = DelayedMessage(message: message, queue: queue, delay: delay) }
        Task { [weak self] in
            try? await Task.sleep(for: Seconds.clamped(delay))
            self?.state.withLock { state in
                state.delayed -= 1
                state.delayedMessages[id] = nil
                guard !state.closed, state.queues[queue] != nil else { return }
                state.published += 1
                state.queues[queue]!.append(MemoryQueue.Entry(message: message, redelivered: false))
                Self.dispatch(&state)
            }
        }
        return delay
    }

    /// - Throws: ``BrokerError`` `.staleDelivery` for a delivery already
    ///   settled or returned by ``close()``.
    public func acknowledge(_ delivery: Delivery) async throws {
        try state.withLock { state in
            _ = try Self.settle(delivery, in: &state)
            Self.dispatch(&state)
        }
    }

    /// - Throws: ``BrokerError`` `.staleDelivery` for a delivery already
    ///   settled or returned by ``close()``.
    public func reject(_ delivery: Delivery, requeue: Bool) async throws {
        try state.withLock { state in
            let entry = try Self.settle(delivery, in: &state)
            if requeue {
                state.queues[entry.queue]?.prepend(MemoryQueue.Entry(message: entry.message, redelivered: true))
            }
            Self.dispatch(&state)
        }
    }

    /// A reply queue named `memory.reply.<n>`; its messages arrive already
    /// acknowledged. It lives until ``close()``.
    ///
    /// - Throws: ``BrokerError`` `.closed` after ``close()``.
    public func makeReplyQueue() async throws -> ReplyQueue {
        let (stream, continuation) = AsyncThrowingStream.makeStream(of: Message.self, throwing: (any Error).self)
        let name = try state.withLock { state -> String in
            guard !state.closed else { throw Self.closedError }
            state.nextReplyQueue += 1
            let name = "memory.reply.\(state.nextReplyQueue)"
            state.replyQueues[name] = continuation
            return name
        }
        continuation.onTermination = { [weak self] _ in
            self?.state.withLock { state in _ = state.replyQueues.removeValue(forKey: name) }
        }
        return ReplyQueue(name: name, messages: stream)
    }

    /// Ends every consumer and reply stream; unacknowledged deliveries go
    /// back to the front of their queues, marked redelivered. Further calls
    /// throw `.closed`.
    public func close() async {
        let (consumers, replies) = state.withLock { state in
            state.closed = true
            // Highest tag first, each to the front: restores the original order.
            for (_, entry) in state.unacked.sorted(by: { $0.key.tag > $1.key.tag }) {
                state.queues[entry.queue]?.prepend(MemoryQueue.Entry(message: entry.message, redelivered: true))
            }
            state.unacked = [:]
            let consumers = state.consumers.values.map(\.continuation)
            let replies = Array(state.replyQueues.values)
            state.consumers = [:]
            state.replyQueues = [:]
            return (consumers, replies)
        }
        for continuation in consumers { continuation.finish() }
        for continuation in replies { continuation.finish() }
    }

    // MARK: Inspection and fault injection for tests

    /// Declares a plain queue (no dead-letter queue), for example a reply-to
    /// queue that a test reads with ``messages(in:)``.
    public func declareQueue(_ name: String) {
        state.withLock { state in
            if state.queues[name] == nil { state.queues[name] = MemoryQueue() }
        }
    }

    /// The ready (not delivered) messages of a queue, oldest first; empty
    /// for a missing queue.
    public func messages(in queue: String) -> [Message] {
        state.withLock { $0.queues[queue]?.messages ?? [] }
    }

    /// How many ready messages a queue holds.
    public func readyCount(in queue: String) -> Int {
        state.withLock { $0.queues[queue]?.count ?? 0 }
    }

    /// Removes and returns the ready messages of a queue.
    public func drain(_ queue: String) -> [Message] {
        state.withLock { state in
            let messages = state.queues[queue]?.messages ?? []
            state.queues[queue]?.removeAll()
            return messages
        }
    }

    /// Deliveries handed to consumers and not yet acknowledged or rejected.
    public var unackedCount: Int {
        state.withLock { $0.unacked.count }
    }

    /// Unacknowledged deliveries taken from `queue`.
    public func unackedCount(in queue: String) -> Int {
        state.withLock { $0.unacked.values.count(where: { $0.queue == queue }) }
    }

    /// The names of the declared queues (reply queues excluded), sorted.
    public var queueNames: [String] {
        state.withLock { $0.queues.keys.sorted() }
    }

    /// Delayed publishes still waiting for their time.
    public var delayedCount: Int {
        state.withLock { $0.delayed }
    }

    /// The delayed publishes still waiting, in no particular order.
    public var delayedMessages: [DelayedMessage] {
        state.withLock { Array($0.delayedMessages.values) }
    }

    /// How many messages publishing accepted, reply queues included.
    public var publishedCount: Int {
        state.withLock { $0.published }
    }

    /// The largest message body a publish accepts, as RabbitMQ's
    /// `max_message_size`: a larger one throws `.messageTooLarge`. nil
    /// (the default) means no limit.
    public var maxMessageBytes: Int? {
        get { state.withLock { $0.maxMessageBytes } }
        set { state.withLock { $0.maxMessageBytes = newValue } }
    }

    /// Makes every publish to `queue` throw `error` (nil restores normal
    /// publishing): to test what happens when the broker refuses a result or
    /// a dead-letter copy.
    public func failPublishes(to queue: String, with error: BrokerError?) {
        state.withLock { $0.publishFailures[queue] = error }
    }

    /// Simulates a lost connection: every consumer's stream ends with
    /// `error`, and its unacknowledged deliveries return to their queues
    /// (acknowledging them afterwards throws `.staleDelivery`), as RabbitMQ
    /// does when a channel dies.
    public func failConsumers(with error: BrokerError) async {
        let continuations = state.withLock { state in
            for (token, entry) in state.unacked.sorted(by: { $0.key.tag > $1.key.tag }) {
                state.queues[entry.queue]?.prepend(MemoryQueue.Entry(message: entry.message, redelivered: true))
                state.unacked[token] = nil
            }
            let continuations = state.consumers.values.map(\.continuation)
            state.consumers = [:]
            return continuations
        }
        for continuation in continuations { continuation.finish(throwing: error) }
    }

    // MARK: Internals

    private static let closedError = BrokerError(.closed, "the memory broker is closed")

    private static func settle(_ delivery: Delivery, in state: inout State) throws -> Unacked {
        guard let entry = state.unacked.removeValue(forKey: delivery.token) else {
            throw BrokerError(.staleDelivery, "delivery \(delivery.token.tag) is not outstanding")
        }
        state.consumers[entry.consumer]?.unacked -= 1
        state.consumers[entry.consumer]?.unackedIn[entry.queue, default: 1] -= 1
        return entry
    }

    /// Hands ready messages to consumers with room under their prefetch,
    /// round-robin over each consumer's queues.
    ///
    /// Yields while holding the lock: `yield` only buffers or resumes the
    /// reader and never calls back into the broker.
    private static func dispatch(_ state: inout State) {
        for id in state.consumers.keys.sorted() {
            guard var consumer = state.consumers[id], consumer.active, !consumer.paused, !consumer.queues.isEmpty else { continue }
            var idlePasses = 0
            while consumer.unacked < consumer.prefetch && idlePasses < consumer.queues.count {
                let queue = consumer.queues[consumer.cursor % consumer.queues.count]
                consumer.cursor = (consumer.cursor + 1) % consumer.queues.count
                if let limit = consumer.queueLimits[queue], consumer.unackedIn[queue, default: 0] >= limit {
                    idlePasses += 1
                    continue
                }
                guard let entry = state.queues[queue]?.popFirst() else {
                    idlePasses += 1
                    continue
                }
                idlePasses = 0
                state.nextTag += 1
                let token = DeliveryToken(generation: id, tag: state.nextTag)
                state.unacked[token] = Unacked(message: entry.message, queue: queue, consumer: id)
                consumer.unacked += 1
                consumer.unackedIn[queue, default: 0] += 1
                consumer.yielded += 1
                consumer.continuation.yield(Delivery(message: entry.message, queue: queue, redelivered: entry.redelivered, token: token))
            }
            state.consumers[id] = consumer
        }
    }
}
