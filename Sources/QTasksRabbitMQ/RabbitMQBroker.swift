import AMQP
import Logging
import QTasks
import Synchronization

/// A `Broker` over RabbitMQ, through rabbitmq-c (module `AMQP`).
///
/// Topology, all through the default exchange (routing key = queue name):
/// - each task queue is durable and declared **without arguments** (but
///   ``RabbitMQBrokerConfiguration/queueArguments``, `x-queue-type` for a
///   ``QueueType`` other than classic and `x-max-priority` when configured):
///   the declaration Celery, kombu, pika and Python QTasks make for the same
///   queue, so whichever side comes first, the other's is accepted
///   (DESIGN.md, "Queues are shared with foreign producers");
/// - what needs the broker's help comes from a RabbitMQ policy instead of
///   arguments (``TaskQueuePolicy``, applied by `qtasks queues policy
///   apply`): its `dead-letter-exchange`/`dead-letter-routing-key` send
///   what RabbitMQ drops itself (bodies over
///   ``RabbitMQBrokerConfiguration/maxMessageBytes`` the worker rejects
///   unread, quorum delivery limits) to `<queue>.dlq`, and its
///   `delivery-limit` bounds a quorum queue's redeliveries;
/// - `<queue>.dlq` is a durable queue; the worker publishes failed messages
///   there with `x-qtasks-*` headers saying why;
/// - a queue that already exists with other arguments (Dramatiq's
///   dead-letter arguments, a Taskiq quorum queue) is used as it is: the
///   refused declaration (406) is logged once with the argument RabbitMQ
///   named and what it means (``QueueArgumentConflict``), then the queue is
///   declared passively on a new channel;
/// - delayed publishes (retries, `DelayedPublishing`) go to
///   `<queue>.retry.<ms>`, one durable queue per delay (rounded, see
///   ``RetryDelays``) with `x-message-ttl: <ms>`, `x-dead-letter-exchange:
///   ""`, `x-dead-letter-routing-key: "<queue>"` and `x-expires` (so unused
///   ones vanish): the message waits there, unconsumed, and RabbitMQ moves
///   it back to `<queue>` when its TTL expires;
/// - reply queues are server-named, exclusive and auto-deleted: they vanish
///   with the client's connection.
///
/// Connections: one for consuming and acknowledging (and reply queues), one
/// for publishing with publisher confirms, so that flow control on publishes
/// never stalls acks (see DESIGN.md). Both open on first use and again after
/// a loss; a delivery from an earlier consuming channel can no longer be
/// acknowledged (`BrokerError.Code.staleDelivery`): RabbitMQ redelivers it.
public final class RabbitMQBroker: DelayedPublishing, PriorityQueueing {
    public let configuration: RabbitMQBrokerConfiguration
    private let logger: Logger
    private let publisher: ConnectionSlot
    private let consumer: ConnectionSlot
    private let consuming = Mutex(ConsumingState())
    /// Retry queues this process declared, and when (monotonic seconds):
    /// a declaration renews the queue's `x-expires` lease.
    private let retryQueues = Mutex<[String: ContinuousClock.Instant]>([:])

    private struct ConsumingState {
        var nextGeneration: UInt64 = 1
        /// The channels deliveries came from, by the generation in their
        /// tokens.
        var channels: [UInt64: AMQPChannel] = [:]
        var active: [(channel: AMQPChannel, tags: [String])] = []
    }

    /// - Parameter configuration: where to connect and how to declare queues.
    ///   Nothing connects until the first operation; call ``connect()`` to
    ///   fail fast on a wrong URL or password.
    public init(configuration: RabbitMQBrokerConfiguration, logger: Logger = Logger(label: "qtasks.rabbitmq")) {
        self.configuration = configuration
        self.logger = logger
        self.publisher = ConnectionSlot(
            endpoints: configuration.endpoints, role: "publisher", confirmWindow: configuration.confirmWindow,
            logger: logger)
        self.consumer = ConnectionSlot(
            endpoints: configuration.endpoints, role: "consumer", confirmWindow: nil, logger: logger)
    }

    /// - Parameter url: `amqp://user:pass@host:port/vhost`.
    /// - Throws: `AMQPError` `.invalidArgument` for a malformed URL.
    public convenience init(url: String, logger: Logger = Logger(label: "qtasks.rabbitmq")) throws {
        self.init(configuration: try RabbitMQBrokerConfiguration(url: url), logger: logger)
    }

    /// Opens both connections now.
    /// - Throws: `BrokerError` `.connectionFailed` with the broker's reply
    ///   (for example `403 ACCESS_REFUSED`).
    public func connect() async throws {
        try await mapErrors {
            _ = try await publisher.channel()
            _ = try await consumer.connection()
        }
    }

    // MARK: Broker

    /// ``RabbitMQBrokerConfiguration/maxPriority``, else an
    /// `x-max-priority` in ``RabbitMQBrokerConfiguration/queueArguments``.
    public func maxPriority(forQueue queue: String) -> Int? {
        if let maxPriority = configuration.maxPriority { return maxPriority }
        switch configuration.queueArguments["x-max-priority"] {
        case .int64(let value)?: return Int(value)
        case .int32(let value)?: return Int(value)
        case .int16(let value)?: return Int(value)
        case .int8(let value)?: return Int(value)
        case .uint8(let value)?: return Int(value)
        case .uint16(let value)?: return Int(value)
        case .uint32(let value)?: return Int(value)
        default: return nil
        }
    }

    public func declareTaskQueue(_ name: String) async throws {
        // Before any broker call: RabbitMQ names a queue declared as ""
        // itself (a durable `amq.gen-…` queue that nothing would ever
        // consume, beside a `.dlq`), and a name too long for its `.dlq` or
        // retry queues fails half-way through.
        try QueueNaming.checkBeforeDeclaring(name)
        try await mapErrors {
            let connection = try await publisher.connection()
            let deadLetterQueue = QueueNaming.deadLetterQueue(for: name)
            let arguments = taskQueueArguments(for: name)
            var deadLetterArguments: AMQPTable = [:]
            if let type = arguments["x-queue-type"] { deadLetterArguments["x-queue-type"] = type }
            for (companion, companionArguments) in configuration.companionQueues.sorted(by: { $0.key < $1.key }) {
                try await declare(companion, arguments: companionArguments, on: connection)
            }
            try await declare(deadLetterQueue, arguments: deadLetterArguments, on: connection)
            try await declare(name, arguments: arguments, on: connection, isTaskQueue: true)
            for binding in configuration.bindings where binding.queue == name {
                try await bind(binding, on: connection)
            }
        }
    }

    /// A task queue's arguments: only what the configuration asks for
    /// explicitly (``RabbitMQBrokerConfiguration/queueArguments``,
    /// ``RabbitMQBrokerConfiguration/queueType`` other than classic,
    /// ``RabbitMQBrokerConfiguration/maxPriority``), which every producer
    /// of the queue must then declare alike. No dead-letter arguments and
    /// no delivery limit: those come from the queue's ``TaskQueuePolicy``.
    private func taskQueueArguments(for queue: String) -> AMQPTable {
        var arguments = configuration.queueArguments
        if let own = configuration.argumentsByQueue[queue] { arguments.merge(own) { $1 } }
        if arguments["x-queue-type"] == nil, configuration.queueType != .classic {
            arguments["x-queue-type"] = .string(configuration.queueType.name)
        }
        if arguments["x-max-priority"] == nil, let maxPriority = configuration.maxPriority {
            arguments["x-max-priority"] = .int64(Int64(maxPriority))
        }
        return arguments
    }

    /// Declares a binding's exchange (durable) and binds its queue, on a
    /// short-lived channel: an exchange of another type closes it with 406.
    private func bind(_ binding: QueueBinding, on connection: AMQPConnection) async throws {
        try await connection.withChannel { channel in
            try await channel.declareExchange(binding.exchange, type: binding.exchangeType.name, durable: true)
            try await channel.bindQueue(binding.queue, exchange: binding.exchange, routingKey: binding.routingKey)
        }
    }

    /// Declares on a short-lived channel: a refused declaration closes its
    /// channel, which must not take the publishing channel down with it.
    /// `isTaskQueue`: the log line of a refusal says what the queue as it
    /// is means for the protections (a `.dlq` or retry queue has none to
    /// lose).
    private func declare(
        _ queue: String, arguments: AMQPTable, on connection: AMQPConnection, isTaskQueue: Bool = false
    ) async throws {
        do {
            try await connection.withChannel { channel in
                _ = try await channel.declareQueue(queue, durable: true, arguments: arguments)
            }
        } catch let error as AMQPError where error.replyCode == 406 {
            // The queue exists with other arguments (made by another tool:
            // Dramatiq's dead-letter arguments, a quorum queue of Taskiq's
            // or of an older worker). Use it as it is rather than refuse to
            // start; the 406 closed that channel, so check on a new one.
            let text = error.replyText ?? ""
            var metadata: Logger.Metadata = ["queue": "\(queue)", "broker": "\(text)"]
            if let conflict = QueueArgumentConflict(replyText: text) {
                metadata["argument"] = "\(conflict.argument)"
                metadata["found"] = "\(conflict.current.map { "'\($0)'" } ?? "none")"
                metadata["declared"] = "\(conflict.received.map { "'\($0)'" } ?? "none")"
                if isTaskQueue {
                    metadata["protection"] = "\(conflict.protectionNote(queue: queue, policy: TaskQueuePolicy.name(forQueue: queue)))"
                }
            }
            logger.warning("queue exists with other arguments; using it as it is", metadata: metadata)
            try await connection.withChannel { check in
                _ = try await check.declareQueue(queue, passive: true)
            }
        }
    }

    public func consume(queues: [String], prefetch: Int) async throws -> AsyncThrowingStream<Delivery, any Error> {
        try await consume(queues.map { QueueSubscription(queue: $0, prefetch: prefetch) })
    }

    /// Consumes every queue on one channel, each consumer with its own
    /// prefetch (`basic.qos` before each `basic.consume`).
    public func consume(_ subscriptions: [QueueSubscription]) async throws -> AsyncThrowingStream<Delivery, any Error> {
        // Consuming again (after a lost connection or a cancelled consumer):
        // close what is left of the earlier session, so its unacknowledged
        // deliveries return to their queues and its other consumers stop.
        let earlier = consuming.withLock { state in
            defer {
                state.active = []
                state.channels = [:]
            }
            return state.active.map(\.channel)
        }
        for channel in earlier { await channel.close() }
        return try await mapErrors {
            let connection = try await consumer.connection()
            let channel = try await connection.openChannel()
            let generation = consuming.withLock { state in
                defer { state.nextGeneration += 1 }
                return state.nextGeneration
            }
            let (stream, continuation) = AsyncThrowingStream<Delivery, any Error>.makeStream()
            let merger = ConsumerMerger(continuation: continuation, consumers: subscriptions.count)
            var tags: [String] = []
            var prefetch: Int?
            for subscription in subscriptions {
                let queue = subscription.queue
                // Per consumer (RabbitMQ's reading of global=false): it
                // applies to the consumers started after it. Not global,
                // because quorum queues refuse a channel-wide prefetch.
                if prefetch != subscription.prefetch {
                    try await channel.setPrefetch(count: min(subscription.prefetch, Int(UInt16.max)))
                    prefetch = subscription.prefetch
                }
                // Deliveries go from the connection's owner thread straight
                // into the worker's stream: one hop, no forwarding task.
                let tag = try await channel.consume(queue: queue, maxBodySize: configuration.maxMessageBytes) { event in
                    switch event {
                    case .delivery(let delivery):
                        continuation.yield(
                            Delivery(
                                message: Message(
                                    body: delivery.body, properties: MessageMapping.messageProperties(delivery.properties)),
                                queue: queue, redelivered: delivery.redelivered,
                                token: DeliveryToken(generation: generation, tag: delivery.deliveryTag),
                                discardedBodySize: delivery.bodyDiscarded ? Int(clamping: delivery.bodySize) : nil))
                    case .ended(let error):
                        merger.consumerEnded(error.map(MessageMapping.brokerError))
                    }
                }
                tags.append(tag)
            }
            consuming.withLock { state in
                state.channels[generation] = channel
                state.active.append((channel, tags))
            }
            return stream
        }
    }

    public func stopConsuming() async {
        let active = consuming.withLock { state in
            defer { state.active = [] }
            return state.active
        }
        for (channel, tags) in active {
            for tag in tags {
                do {
                    try await channel.cancel(consumerTag: tag)
                } catch {
                    logger.debug("consumer cancel failed", metadata: ["tag": "\(tag)", "error": "\(error)"])
                }
            }
        }
    }

    /// Publishes on the shared publishing channel, confirmed.
    ///
    /// A message the broker refuses as too large (RabbitMQ's
    /// `max_message_size`: `406 PRECONDITION_FAILED`, which closes the
    /// channel) fails with ``BrokerError/Code/messageTooLarge``. The
    /// refusal names the limit: larger messages are then refused here
    /// (same error, nothing sent) for as long as the publishing connection
    /// lasts, so that they no longer close the channel. The other publishes
    /// that the closed channel failed (sent after the refused one, or not
    /// yet confirmed) are sent again on a new channel, up to
    /// ``channelRetries`` times: a neighbour's refusal does not fail them.
    /// One that had reached its queue before the channel closed then
    /// arrives twice (at-least-once, as after a requeue).
    public func publish(_ message: Message, to queue: String, mandatory: Bool) async throws {
        let size = message.body.count
        let properties = MessageMapping.amqpProperties(message.properties)
        var retries = 0
        while true {
            let channel = try await mapErrors { try await publisher.channel() }
            if let limit = knownMessageLimit(on: channel), size > limit {
                throw MessageMapping.tooLarge(size: size, limit: limit, replyText: nil)
            }
            do {
                try await channel.publish(
                    message.body, exchange: "", routingKey: queue, mandatory: mandatory, properties: properties)
                return
            } catch let error as AMQPError {
                if error.code == .channelClosed { await publisher.invalidate(channel) }
                if let refusal = MessageMapping.OversizeRefusal(error) {
                    learnMessageLimit(refusal.limit, on: channel)
                    if refusal.refuses(bodySize: size) {
                        throw MessageMapping.tooLarge(size: size, limit: refusal.limit, replyText: error.replyText)
                    }
                }
                guard error.code == .channelClosed, retries < Self.channelRetries else {
                    throw MessageMapping.brokerError(error)
                }
                retries += 1
                logger.notice(
                    "publish failed with its channel (closed by the broker for another message); sending it again on a new channel",
                    metadata: ["queue": "\(queue)", "error": "\(error)", "try": "\(retries + 1)"])
            }
        }
    }

    /// How many times a publish failed by its channel's close (another
    /// message's fault, as far as the broker's reply tells) is sent again
    /// on a new channel.
    static let channelRetries = 3

    /// The broker's maximum message size, once a refusal named it, with
    /// the publishing connection that learned it: RabbitMQ does not
    /// advertise `max_message_size` (not in `connection.start`'s server
    /// properties), and a new connection (a restarted broker, another
    /// node) may have another.
    private let messageLimit = Mutex<(limit: Int, connection: ObjectIdentifier)?>(nil)

    private func knownMessageLimit(on channel: AMQPChannel) -> Int? {
        messageLimit.withLock { known in
            guard let known, known.connection == ObjectIdentifier(channel.connection) else { return nil }
            return known.limit
        }
    }

    private func learnMessageLimit(_ limit: Int, on channel: AMQPChannel) {
        let learned = messageLimit.withLock { known in
            defer { known = (limit, ObjectIdentifier(channel.connection)) }
            return known?.limit != limit || known?.connection != ObjectIdentifier(channel.connection)
        }
        if learned {
            logger.warning(
                "the broker refused a message as too large; larger messages are refused before sending from now on",
                metadata: ["max_message_size": "\(limit)"])
        }
    }

    /// Hands the whole batch to the publishing connection's owner thread at
    /// once (`AMQPChannel.publish(batch:)`): pipelined within the confirm
    /// window, with no thread hop per message. Oversize messages and the
    /// others of a closed channel are handled as by
    /// ``publish(_:to:mandatory:)``: a message the broker refuses as too
    /// large fails alone, the rest of the batch is sent again on a new
    /// channel.
    public func publish(batch publications: [Publication]) async throws -> [Result<Void, any Error>] {
        var results = [Result<Void, any Error>?](repeating: nil, count: publications.count)
        var pending = Array(publications.indices)
        var retries = 0
        while !pending.isEmpty {
            let channel: AMQPChannel
            let outcomes: [Result<Void, AMQPError>]
            var sending: [Int] = []
            do {
                channel = try await mapErrors { try await publisher.channel() }
                let limit = knownMessageLimit(on: channel)
                for index in pending {
                    let size = publications[index].message.body.count
                    if let limit, size > limit {
                        results[index] = .failure(MessageMapping.tooLarge(size: size, limit: limit, replyText: nil))
                    } else {
                        sending.append(index)
                    }
                }
                if sending.isEmpty { break }
                let messages = sending.map { index in
                    let publication = publications[index]
                    return AMQPOutgoingMessage(
                        publication.message.body, routingKey: publication.queue, mandatory: publication.mandatory,
                        properties: MessageMapping.amqpProperties(publication.message.properties))
                }
                do {
                    outcomes = try await channel.publish(batch: messages)
                } catch let error as AMQPError {
                    if error.code == .channelClosed || error.code == .connectionClosed { await publisher.invalidate(channel) }
                    throw MessageMapping.brokerError(error)
                }
            } catch {
                // The first try throws as before; a later one fails only
                // the messages it was sending again.
                guard retries > 0 else { throw error }
                for index in pending where results[index] == nil { results[index] = .failure(error) }
                break
            }
            if outcomes.contains(where: { if case .failure(let error) = $0 { error.code == .channelClosed } else { false } }) {
                await publisher.invalidate(channel)
            }
            var again: [Int] = []
            for (index, outcome) in zip(sending, outcomes) {
                switch outcome {
                case .success:
                    results[index] = .success(())
                case .failure(let error):
                    let size = publications[index].message.body.count
                    if let refusal = MessageMapping.OversizeRefusal(error) {
                        learnMessageLimit(refusal.limit, on: channel)
                        if refusal.refuses(bodySize: size) {
                            results[index] = .failure(
                                MessageMapping.tooLarge(size: size, limit: refusal.limit, replyText: error.replyText))
                            continue
                        }
                    }
                    if error.code == .channelClosed, retries < Self.channelRetries {
                        again.append(index)
                    } else {
                        results[index] = .failure(MessageMapping.brokerError(error))
                    }
                }
            }
            if !again.isEmpty {
                logger.notice(
                    "publishes failed with their channel (closed by the broker for another message); sending them again on a new channel",
                    metadata: ["count": "\(again.count)"])
            }
            pending = again
            retries += 1
        }
        return results.map { $0 ?? .failure(BrokerError(.connectionLost, "the message was not published")) }
    }

    /// Hands the ack to the consuming connection without waiting for it to
    /// be written (see `AMQPChannel.enqueueAck`): if the connection fails
    /// first, RabbitMQ redelivers the message, so at-least-once holds and the
    /// worker does not wait a thread hop per message.
    public func acknowledge(_ delivery: Delivery) async throws {
        let channel = try channel(for: delivery)
        do {
            try channel.enqueueAck(deliveryTag: delivery.token.tag)
        } catch {
            throw MessageMapping.brokerError(error)
        }
    }

    public func reject(_ delivery: Delivery, requeue: Bool) async throws {
        let channel = try channel(for: delivery)
        try await mapErrors { try await channel.reject(deliveryTag: delivery.token.tag, requeue: requeue) }
    }

    /// False when the delivery's consumer session was replaced, or its
    /// channel or connection is closed (the broker closes the channel when
    /// a delivery outlives its `consumer_timeout`): RabbitMQ has requeued it.
    public func canSettle(_ delivery: Delivery) -> Bool {
        guard let channel = consuming.withLock({ $0.channels[delivery.token.generation] }) else { return false }
        return channel.isOpen
    }

    private func channel(for delivery: Delivery) throws -> AMQPChannel {
        guard let channel = consuming.withLock({ $0.channels[delivery.token.generation] }) else {
            throw BrokerError(.staleDelivery, "delivery \(delivery.token.tag) belongs to an unknown consumer")
        }
        return channel
    }

    /// Publishes `message` to `<queue>.retry.<ms>` (declared on first use,
    /// and again before its `x-expires` lease could run out), from which
    /// RabbitMQ dead-letters it back to `queue` after `<ms>`; publisher
    /// confirmed, mandatory. `delay` is rounded by
    /// ``RetryDelays/quantizedMilliseconds(_:)``; under 5 ms the message goes
    /// straight to `queue`.
    ///
    /// - Returns: the delay applied (`.zero` under 5 ms).
    @discardableResult
    public func publish(_ message: Message, to queue: String, after delay: Duration) async throws -> Duration {
        let milliseconds = RetryDelays.quantizedMilliseconds(delay)
        guard milliseconds > 0 else {
            try await publish(message, to: queue, mandatory: true)
            return .zero
        }
        let retryQueue = RetryDelays.queueName(for: queue, milliseconds: milliseconds)
        try await declareRetryQueue(retryQueue, for: queue, milliseconds: milliseconds, force: false)
        do {
            try await publish(message, to: retryQueue, mandatory: true)
        } catch let error as BrokerError where error.code == .unroutable {
            // Deleted behind our back: declare it again, once.
            try await declareRetryQueue(retryQueue, for: queue, milliseconds: milliseconds, force: true)
            try await publish(message, to: retryQueue, mandatory: true)
        }
        return .milliseconds(milliseconds)
    }

    private func declareRetryQueue(_ name: String, for queue: String, milliseconds: Int, force: Bool) async throws {
        let ttl = Duration.milliseconds(milliseconds)
        // The queue lives `expires` after its last declaration; a message
        // published up to `ttl + 30 s` after a declaration expires at most
        // `2 ttl + 30 s` after it, inside the lease with 30 s to spare.
        let expires = 2 * milliseconds + 60_000
        let now = ContinuousClock.now
        if !force, let declared = retryQueues.withLock({ $0[name] }), now - declared < ttl + .seconds(30) { return }
        try await mapErrors {
            let connection = try await publisher.connection()
            try await declare(
                name,
                arguments: [
                    "x-message-ttl": .int64(Int64(milliseconds)),
                    "x-dead-letter-exchange": "",
                    "x-dead-letter-routing-key": .string(queue),
                    "x-expires": .int64(Int64(expires)),
                ],
                on: connection)
        }
        retryQueues.withLock { $0[name] = now }
    }

    public func makeReplyQueue() async throws -> ReplyQueue {
        try await mapErrors {
            let connection = try await consumer.connection()
            let channel = try await connection.openChannel()
            let info = try await channel.declareQueue("", durable: false, exclusive: true, autoDelete: true)
            let amqpConsumer = try await channel.consume(queue: info.name, noAck: true, exclusive: true)
            let (stream, continuation) = AsyncThrowingStream<Message, any Error>.makeStream()
            let forwarding = Task {
                do {
                    for try await delivery in amqpConsumer {
                        continuation.yield(
                            Message(body: delivery.body, properties: MessageMapping.messageProperties(delivery.properties)))
                    }
                    continuation.finish()
                } catch {
                    continuation.finish(throwing: MessageMapping.brokerError(error))
                }
            }
            continuation.onTermination = { _ in forwarding.cancel() }
            return ReplyQueue(name: info.name, messages: stream)
        }
    }

    public func close() async {
        await consumer.close()
        await publisher.close()
        consuming.withLock { $0 = ConsumingState() }
    }

    private func mapErrors<T>(_ body: () async throws -> T) async throws -> T {
        do {
            return try await body()
        } catch {
            throw MessageMapping.brokerError(error)
        }
    }
}

/// Ends the merged delivery stream once every consumer of it has ended,
/// with the first error if any ended with one.
private final class ConsumerMerger: Sendable {
    private struct State {
        var remaining: Int
        var error: (any Error)?
    }
    private let state: Mutex<State>
    private let continuation: AsyncThrowingStream<Delivery, any Error>.Continuation

    init(continuation: AsyncThrowingStream<Delivery, any Error>.Continuation, consumers: Int) {
        self.continuation = continuation
        self.state = Mutex(State(remaining: consumers))
    }

    func consumerEnded(_ error: (any Error)?) {
        let finish: (done: Bool, error: (any Error)?) = state.withLock { state in
            state.remaining -= 1
            if state.error == nil { state.error = error }
            return (state.remaining == 0, state.error)
        }
        if let error = finish.error {
            // A lost connection ends every consumer on it: report it now.
            continuation.finish(throwing: error)
        } else if finish.done {
            continuation.finish()
        }
    }
}
