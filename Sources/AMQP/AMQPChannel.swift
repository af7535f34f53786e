import Synchronization
/// An AMQP channel on an ``AMQPConnection``.
///
/// A value type naming the channel; every operation runs on the connection's
/// owner thread. When the broker closes the channel (for example `404
/// NOT_FOUND` for a missing queue, or `406 PRECONDITION_FAILED` when a
/// delivery was not acknowledged within RabbitMQ's `consumer_timeout`),
/// every later operation throws ``AMQPError`` with code `.channelClosed`
/// (acks and rejects: `.staleDeliveryTag`), carrying the broker's reply
/// code and text, at once and without sending a frame: a frame on a channel
/// the broker closed is a protocol error (`504 CHANNEL_ERROR`) that closes
/// the whole connection. Open a new channel to go on. Delivery tags belong
/// to the channel that received them, so an ack naming a closed channel is
/// refused rather than sent on a successor.
public struct AMQPChannel: Sendable {
    public let connection: AMQPConnection
    let id: UInt64
    /// The channel number on the wire.
    public let number: UInt16
    /// Set by the owner thread when the channel closes.
    let lifetime: ChannelLifetime

    init(connection: AMQPConnection, id: UInt64, number: UInt16, lifetime: ChannelLifetime) {
        self.connection = connection
        self.id = id
        self.number = number
        self.lifetime = lifetime
    }

    /// True until the channel closes: by the broker (see ``closeReason``),
    /// by ``close()``, or with its connection. Cheap (a lock, no thread
    /// hop). A channel can close at any moment, so true is a hint: an
    /// operation may still fail with `.channelClosed`.
    public var isOpen: Bool { lifetime.closeReason == nil && connection.isOpen }

    /// Why the channel closed: the broker's `channel.close` (its
    /// `replyCode` and `replyText`, for example `406` with `PRECONDITION_FAILED
    /// - delivery acknowledgement on channel 1 timed out...`), this
    /// process's ``close()``, or the connection's end; nil while open.
    public var closeReason: AMQPError? { lifetime.closeReason }

    /// The error an operation on this closed channel fails with, nil while
    /// it is open: `code` (`.channelClosed`, or `.staleDeliveryTag` for
    /// acks and rejects) with the close's reply, or the connection's error
    /// when the connection ended first.
    func closedError(_ what: String, code: AMQPError.Code = .channelClosed) -> AMQPError? {
        guard let reason = lifetime.closeReason else { return nil }
        if reason.code != .channelClosed && code == .channelClosed { return reason }
        let suffix = code == .staleDeliveryTag ? " that delivered this message" : ""
        return AMQPError(
            code, "\(what): channel \(number)\(suffix) is closed (\(reason.message)); nothing was sent",
            replyCode: reason.replyCode, replyText: reason.replyText)
    }

    /// Runs `body` with this channel's state on the owner thread.
    private func perform<T: Sendable>(_ body: @escaping @Sendable (ConnectionCore, ChannelState) throws -> T)
        async throws -> T
    {
        if let error = closedError("channel operation") { throw error }
        let (id, number) = (self.id, self.number)
        return try await connection.perform { core in
            try body(core, try core.channel(id, number: number))
        }
    }

    // MARK: Queues and exchanges

    /// The outcome of a queue declaration.
    public struct QueueInfo: Sendable, Hashable {
        /// The queue's name (the broker's choice when declared with `""`).
        public let name: String
        /// Messages ready for delivery.
        public let messageCount: UInt32
        public let consumerCount: UInt32
    }

    /// Declares a queue (`queue.declare`).
    ///
    /// - Parameters:
    ///   - name: up to 255 bytes; `""` lets the broker choose a name.
    ///   - passive: only check that the queue exists.
    ///   - arguments: optional queue arguments such as `x-dead-letter-exchange`,
    ///     `x-max-priority`, `x-queue-type` (RabbitMQ "Queues" guide).
    /// - Throws: ``AMQPError`` `.channelClosed` with `404 NOT_FOUND` for a
    ///   passive declare of a missing queue, `406 PRECONDITION_FAILED` when the
    ///   queue exists with other properties or arguments.
    @discardableResult
    public func declareQueue(
        _ name: String, passive: Bool = false, durable: Bool = true, exclusive: Bool = false,
        autoDelete: Bool = false, arguments: AMQPTable = [:]
    ) async throws -> QueueInfo {
        try validateShortString(name, "queue name")
        try validateTable(arguments, "queue argument")
        return try await perform { core, channel in
            try core.declareQueue(
                name, passive: passive, durable: durable, exclusive: exclusive, autoDelete: autoDelete,
                arguments: arguments, on: channel)
        }
    }

    /// Deletes a queue (`queue.delete`) and returns how many messages it held.
    @discardableResult
    public func deleteQueue(_ name: String, ifUnused: Bool = false, ifEmpty: Bool = false) async throws -> UInt32 {
        try validateShortString(name, "queue name")
        return try await perform { core, channel in
            try core.deleteQueue(name, ifUnused: ifUnused, ifEmpty: ifEmpty, on: channel)
        }
    }

    /// Removes all ready messages from a queue (`queue.purge`) and returns
    /// how many there were.
    @discardableResult
    public func purgeQueue(_ name: String) async throws -> UInt32 {
        try validateShortString(name, "queue name")
        return try await perform { core, channel in try core.purgeQueue(name, on: channel) }
    }

    /// Declares an exchange (`exchange.declare`); `type` is `direct`,
    /// `topic`, `fanout` or `headers`.
    public func declareExchange(
        _ name: String, type: String, durable: Bool = true, autoDelete: Bool = false, internal isInternal: Bool = false,
        arguments: AMQPTable = [:]
    ) async throws {
        try validateShortString(name, "exchange name")
        try validateShortString(type, "exchange type")
        try validateTable(arguments, "exchange argument")
        try await perform { core, channel in
            try core.declareExchange(
                name, type: type, durable: durable, autoDelete: autoDelete, isInternal: isInternal, arguments: arguments,
                on: channel)
        }
    }

    /// Deletes an exchange (`exchange.delete`).
    public func deleteExchange(_ name: String, ifUnused: Bool = false) async throws {
        try validateShortString(name, "exchange name")
        try await perform { core, channel in try core.deleteExchange(name, ifUnused: ifUnused, on: channel) }
    }

    /// Binds a queue to an exchange (`queue.bind`).
    public func bindQueue(_ queue: String, exchange: String, routingKey: String, arguments: AMQPTable = [:])
        async throws
    {
        try validateShortString(queue, "queue name")
        try validateShortString(exchange, "exchange name")
        try validateShortString(routingKey, "routing key")
        try validateTable(arguments, "binding argument")
        try await perform { core, channel in
            try core.bindQueue(queue, exchange: exchange, routingKey: routingKey, arguments: arguments, on: channel)
        }
    }

    // MARK: Consuming

    /// Limits unacknowledged deliveries on this channel (`basic.qos`).
    /// - Parameter count: 1...65535; 0 means no limit.
    public func setPrefetch(count: Int, global: Bool = false) async throws {
        guard (0...Int(UInt16.max)).contains(count) else {
            throw AMQPError(.invalidArgument, "prefetch count must be 0...65535, not \(count)")
        }
        try await perform { core, channel in try core.setPrefetch(count: UInt16(count), global: global, on: channel) }
    }

    /// Starts a consumer (`basic.consume`).
    ///
    /// - Parameters:
    ///   - queue: the queue to consume.
    ///   - tag: the consumer tag; `""` lets the broker choose.
    ///   - noAck: the broker considers messages acknowledged on delivery.
    /// - Returns: the deliveries; see ``AMQPConsumer``.
    /// - Throws: ``AMQPError`` `.channelClosed` with `404 NOT_FOUND` for a
    ///   missing queue (the channel is then closed).
    public func consume(
        queue: String, tag: String = "", noAck: Bool = false, exclusive: Bool = false, arguments: AMQPTable = [:]
    ) async throws -> AMQPConsumer {
        let (stream, continuation) = AsyncThrowingStream<AMQPDelivery, any Error>.makeStream()
        let consumerTag = try await consume(
            queue: queue, tag: tag, noAck: noAck, exclusive: exclusive, arguments: arguments
        ) { event in
            switch event {
            case .delivery(let delivery): continuation.yield(delivery)
            case .ended(nil): continuation.finish()
            case .ended(let error?): continuation.finish(throwing: error)
            }
        }
        return AMQPConsumer(tag: consumerTag, stream: stream)
    }

    /// Starts a consumer (`basic.consume`) whose deliveries go straight to
    /// `handler`, called on the connection's owner thread: the fastest path,
    /// with no hop through an `AsyncSequence`.
    ///
    /// `handler` must return quickly and never block: while it runs, the
    /// connection sends and receives nothing (heartbeats included). Hand the
    /// delivery on (for example to an `AsyncStream` continuation) and
    /// return. It gets `.ended(nil)` after ``cancel(consumerTag:)`` and
    /// `.ended(error)` when the channel or connection closes or the broker
    /// cancels the consumer; nothing after that.
    ///
    /// - Returns: the consumer tag.
    /// - Throws: as ``consume(queue:tag:noAck:exclusive:arguments:)``.
    ///
    /// - Parameter maxBodySize: a body larger than this many bytes is read
    ///   off the socket frame by frame and dropped, never held in memory:
    ///   the delivery has an empty `body` and ``AMQPDelivery/bodyDiscarded``
    ///   set, so the consumer can reject it. nil (default): no limit.
    public func consume(
        queue: String, tag: String = "", noAck: Bool = false, exclusive: Bool = false, arguments: AMQPTable = [:],
        maxBodySize: Int? = nil,
        handler: @escaping @Sendable (AMQPConsumerEvent) -> Void
    ) async throws -> String {
        try validateShortString(queue, "queue name")
        try validateShortString(tag, "consumer tag")
        try validateTable(arguments, "consumer argument")
        return try await perform { core, channel in
            try core.consume(
                queue: queue, tag: tag, noAck: noAck, exclusive: exclusive, arguments: arguments,
                sink: ConsumerSink(noAck: noAck, handler: handler, maxBodySize: maxBodySize), on: channel)
        }
    }

    /// Cancels a consumer (`basic.cancel`). Deliveries the broker sent
    /// before its `cancel-ok` are still handed out; then the consumer's
    /// sequence ends.
    public func cancel(consumerTag: String) async throws {
        try validateShortString(consumerTag, "consumer tag")
        try await perform { core, channel in try core.cancel(consumerTag: consumerTag, on: channel) }
    }

    /// Fetches one message (`basic.get`), or `nil` when the queue is empty.
    ///
    /// - Parameter maxBodySize: a body larger than this many bytes is read
    ///   off the socket and dropped, never held in memory: the delivery has
    ///   an empty `body` and ``AMQPDelivery/bodyDiscarded`` set. nil: no limit.
    public func get(queue: String, noAck: Bool = false, maxBodySize: Int? = nil) async throws -> AMQPDelivery? {
        try validateShortString(queue, "queue name")
        let timeout = connection.configuration.rpcTimeout
        return try await perform { core, channel in
            try core.get(queue: queue, noAck: noAck, maxBodySize: maxBodySize, timeout: timeout, on: channel)
        }
    }

    // MARK: Acknowledgements

    /// Acknowledges a delivery (`basic.ack`); with `multiple`, every earlier
    /// one on this channel too. Returns once the ack is written to the socket.
    public func ack(deliveryTag: UInt64, multiple: Bool = false) async throws {
        try await settle(.ack, deliveryTag: deliveryTag, multiple: multiple)
    }

    /// Negatively acknowledges a delivery (`basic.nack`, a RabbitMQ
    /// extension); with `requeue` the broker delivers it again.
    public func nack(deliveryTag: UInt64, multiple: Bool = false, requeue: Bool) async throws {
        try await settle(.nack(requeue: requeue), deliveryTag: deliveryTag, multiple: multiple)
    }

    /// Rejects a delivery (`basic.reject`).
    public func reject(deliveryTag: UInt64, requeue: Bool) async throws {
        try await settle(.reject(requeue: requeue), deliveryTag: deliveryTag, multiple: false)
    }

    /// Hands a `basic.ack` to the owner thread and returns at once, without
    /// waiting for it to be written: the cheap path for a consumer that acks
    /// every message. If the connection fails before the ack is written, the
    /// broker redelivers the message (at-least-once still holds).
    ///
    /// - Throws: ``AMQPError`` `.staleDeliveryTag` when the channel or the
    ///   connection is already known to be closed (with the broker's reply,
    ///   when it closed the channel). A channel that closes while the ack
    ///   waits for the owner thread is detected there and the ack dropped,
    ///   never written (the broker has already requeued the message).
    public func enqueueAck(deliveryTag: UInt64) throws {
        if let error = closedError("basic.ack", code: .staleDeliveryTag) { throw error }
        let (id, number) = (self.id, self.number)
        let posted = connection.mailbox.post { core in
            guard core.isOpen, let channel = try? core.channel(id, number: number) else { return }
            core.enqueueAck(deliveryTag, on: channel)
        }
        if !posted {
            throw AMQPError(.staleDeliveryTag, "basic.ack: the connection that delivered this message is closed")
        }
    }

    private func settle(_ settlement: ConnectionCore.Acknowledgement, deliveryTag: UInt64, multiple: Bool) async throws {
        let what = settlement.method
        if let error = closedError(what, code: .staleDeliveryTag) { throw error }
        let (id, number) = (self.id, self.number)
        try await connection.perform { core in
            guard core.isOpen else {
                throw AMQPError(.staleDeliveryTag, "\(what): the connection that delivered this message is closed")
            }
            guard let channel = try? core.channel(id, number: number) else {
                throw AMQPError(.staleDeliveryTag, "\(what): channel \(number) that delivered this message is closed")
            }
            try core.settle(settlement, deliveryTag: deliveryTag, multiple: multiple, on: channel)
        }
    }

    // MARK: Publishing

    /// Puts the channel in confirm mode (`confirm.select`): from now on
    /// ``publish(_:exchange:routingKey:mandatory:properties:)`` returns only
    /// once the broker has confirmed the message.
    ///
    /// - Parameter window: the most messages awaiting confirmation at once;
    ///   further publishes wait their turn (in order) on the owner thread.
    public func enableConfirms(window: Int = 1024) async throws {
        guard window > 0 else { throw AMQPError(.invalidArgument, "confirm window must be > 0, not \(window)") }
        try await perform { core, channel in try core.selectConfirms(window: window, on: channel) }
    }

    /// Publishes a message (`basic.publish`).
    ///
    /// Without confirms, returns once the message is written to the socket.
    /// In confirm mode, returns once the broker confirmed it, and throws if it
    /// did not.
    ///
    /// - Parameters:
    ///   - body: the message body, any bytes.
    ///   - exchange: `""` is the default exchange, which routes by queue name.
    ///   - routingKey: up to 255 bytes.
    ///   - mandatory: ask the broker to return the message when no queue
    ///     takes it.
    /// - Throws: ``AMQPError``: `.invalidArgument` for an over-long name or
    ///   property, `.publishNacked`, `.publishReturned` (mandatory, confirm
    ///   mode), `.channelClosed` (for example `404` for a missing exchange),
    ///   `.connectionClosed`.
    public func publish(
        _ body: [UInt8], exchange: String = "", routingKey: String, mandatory: Bool = false,
        properties: AMQPProperties = AMQPProperties()
    ) async throws {
        try validateShortString(exchange, "exchange name")
        try validateShortString(routingKey, "routing key")
        try validateProperties(properties)
        if let error = closedError("basic.publish") { throw error }
        let (id, number) = (self.id, self.number)
        try await connection.performDeferred { core, continuation in
            let channel: ChannelState
            do {
                channel = try core.channel(id, number: number)
            } catch {
                continuation.resume(throwing: error)
                return
            }
            core.publish(
                OutgoingMessage(
                    exchange: exchange, routingKey: routingKey, mandatory: mandatory, properties: properties, body: body),
                on: channel, waiter: .single(continuation))
        }
    }

    /// Publishes a message (`basic.publish`) without waiting: hands it to
    /// the connection's owner thread and returns, and `onSettled` runs on
    /// that thread once the outcome is known (in confirm mode, the broker's
    /// confirm; without confirms, the write). No Swift task waits and no
    /// continuation is resumed per message: the cheap path for a caller that
    /// acts on the confirm from the owner thread itself (the worker's
    /// "result confirmed, then ack" step).
    ///
    /// `onSettled` is called exactly once, unless this method throws; it
    /// must be quick and must not block (it holds up the connection's
    /// frames), and it may post work to other connections.
    ///
    /// - Parameters: as ``publish(_:exchange:routingKey:mandatory:properties:)``.
    /// - Throws: ``AMQPError`` `.invalidArgument` for an over-long name or
    ///   property, `.channelClosed` or `.connectionClosed` when the channel
    ///   is already known to be closed; then nothing was sent and
    ///   `onSettled` is not called. Later failures (nack, return, a close)
    ///   go to `onSettled` as the errors
    ///   ``publish(_:exchange:routingKey:mandatory:properties:)`` throws.
    public func publish(
        _ body: [UInt8], exchange: String = "", routingKey: String, mandatory: Bool = false,
        properties: AMQPProperties = AMQPProperties(),
        onSettled: @escaping @Sendable (Result<Void, AMQPError>) -> Void
    ) throws {
        try validateShortString(exchange, "exchange name")
        try validateShortString(routingKey, "routing key")
        try validateProperties(properties)
        if let error = closedError("basic.publish") { throw error }
        let (id, number) = (self.id, self.number)
        let message = OutgoingMessage(
            exchange: exchange, routingKey: routingKey, mandatory: mandatory, properties: properties, body: body)
        let posted = connection.mailbox.post { core in
            let channel: ChannelState
            do {
                channel = try core.channel(id, number: number)
            } catch {
                onSettled(.failure(error as? AMQPError ?? AMQPError(.channelClosed, "\(error)")))
                return
            }
            core.publish(message, on: channel, waiter: .callback(onSettled))
        }
        if !posted { throw AMQPError(.connectionClosed, "the connection is closed") }
    }

    /// Publishes many messages in order, handed to the connection's owner
    /// thread at once, and returns when the broker has settled every one:
    /// pipelined within the confirm window (``enableConfirms(window:)``),
    /// without a thread hop or a continuation per message. Without
    /// confirms, a message is settled once written.
    ///
    /// - Parameter messages: what to publish, in order.
    /// - Returns: each message's outcome, in order: success once confirmed
    ///   (or written, without confirms), else the error ``publish(_:exchange:routingKey:mandatory:properties:)``
    ///   would have thrown for it.
    /// - Throws: ``AMQPError`` `.invalidArgument` for a name, routing key or
    ///   property that rabbitmq-c cannot take (before anything is
    ///   published), `.connectionClosed` when the connection is closed.
    public func publish(batch messages: [AMQPOutgoingMessage]) async throws -> [Result<Void, AMQPError>] {
        for message in messages {
            try validateShortString(message.exchange, "exchange name")
            try validateShortString(message.routingKey, "routing key")
            try validateProperties(message.properties)
        }
        if let error = closedError("basic.publish") {
            // Each message fails as a single publish would, nothing sent.
            return messages.map { _ in .failure(error) }
        }
        let (id, number) = (self.id, self.number)
        let posted = Mutex(true)
        let results = await withCheckedContinuation { (continuation: CheckedContinuation<[Result<Void, AMQPError>], Never>) in
            let accepted = connection.mailbox.post { core in
                let batch = PublishBatch(count: messages.count, continuation: continuation)
                let channel: ChannelState
                do {
                    channel = try core.channel(id, number: number)
                } catch {
                    for index in messages.indices { batch.complete(index, .failure(error)) }
                    return
                }
                for (index, message) in messages.enumerated() {
                    core.publish(
                        OutgoingMessage(
                            exchange: message.exchange, routingKey: message.routingKey, mandatory: message.mandatory,
                            properties: message.properties, body: message.body),
                        on: channel, waiter: .batch(batch, index: index))
                }
            }
            if !accepted {
                posted.withLock { $0 = false }
                continuation.resume(returning: [])
            }
        }
        guard posted.withLock({ $0 }) else { throw AMQPError(.connectionClosed, "the connection is closed") }
        return results
    }

    /// Closes the channel (`channel.close`). Safe to call more than once;
    /// nothing is sent for a channel that is already closed.
    public func close() async {
        _ = try? await perform { core, channel in core.closeChannel(channel) }
    }
}

