import CRabbitMQ

/// The synchronous channel methods (`queue.*`, `exchange.*`, `basic.*`,
/// `confirm.select`) as rabbitmq-c calls: `AMQPChannel` validates its
/// arguments and runs these on the owner thread, so that the public types
/// never touch C. Each takes and returns Swift values only.
extension ConnectionCore {
    // MARK: Queues and exchanges

    func declareQueue(
        _ name: String, passive: Bool, durable: Bool, exclusive: Bool, autoDelete: Bool, arguments: AMQPTable,
        on channel: ChannelState
    ) throws -> AMQPChannel.QueueInfo {
        let arena = CArena()
        let ok = amqp_queue_declare(
            state, channel.number, arena.bytes(name), passive ? 1 : 0, durable ? 1 : 0, exclusive ? 1 : 0,
            autoDelete ? 1 : 0, arena.table(arguments))
        try checkReply("queue.declare '\(name)'", channel: channel)
        guard let ok else { throw AMQPError(.protocolError, "queue.declare: no declare-ok") }
        return AMQPChannel.QueueInfo(
            name: CDecode.string(ok.pointee.queue), messageCount: ok.pointee.message_count,
            consumerCount: ok.pointee.consumer_count)
    }

    func deleteQueue(_ name: String, ifUnused: Bool, ifEmpty: Bool, on channel: ChannelState) throws -> UInt32 {
        let arena = CArena()
        let ok = amqp_queue_delete(state, channel.number, arena.bytes(name), ifUnused ? 1 : 0, ifEmpty ? 1 : 0)
        try checkReply("queue.delete '\(name)'", channel: channel)
        return ok?.pointee.message_count ?? 0
    }

    func purgeQueue(_ name: String, on channel: ChannelState) throws -> UInt32 {
        let arena = CArena()
        let ok = amqp_queue_purge(state, channel.number, arena.bytes(name))
        try checkReply("queue.purge '\(name)'", channel: channel)
        return ok?.pointee.message_count ?? 0
    }

    func declareExchange(
        _ name: String, type: String, durable: Bool, autoDelete: Bool, isInternal: Bool, arguments: AMQPTable,
        on channel: ChannelState
    ) throws {
        let arena = CArena()
        _ = amqp_exchange_declare(
            state, channel.number, arena.bytes(name), arena.bytes(type), 0, durable ? 1 : 0,
            autoDelete ? 1 : 0, isInternal ? 1 : 0, arena.table(arguments))
        try checkReply("exchange.declare '\(name)'", channel: channel)
    }

    func deleteExchange(_ name: String, ifUnused: Bool, on channel: ChannelState) throws {
        let arena = CArena()
        _ = amqp_exchange_delete(state, channel.number, arena.bytes(name), ifUnused ? 1 : 0)
        try checkReply("exchange.delete '\(name)'", channel: channel)
    }

    func bindQueue(
        _ queue: String, exchange: String, routingKey: String, arguments: AMQPTable, on channel: ChannelState
    ) throws {
        let arena = CArena()
        _ = amqp_queue_bind(
            state, channel.number, arena.bytes(queue), arena.bytes(exchange), arena.bytes(routingKey),
            arena.table(arguments))
        try checkReply("queue.bind '\(queue)' to '\(exchange)'", channel: channel)
    }

    // MARK: Consuming

    func setPrefetch(count: UInt16, global: Bool, on channel: ChannelState) throws {
        _ = amqp_basic_qos(state, channel.number, 0, count, global ? 1 : 0)
        try checkReply("basic.qos", channel: channel)
    }

    /// `basic.consume`; returns the consumer tag (the broker's choice for
    /// `""`) and routes its deliveries to `sink`.
    func consume(
        queue: String, tag: String, noAck: Bool, exclusive: Bool, arguments: AMQPTable, sink: ConsumerSink,
        on channel: ChannelState
    ) throws -> String {
        let arena = CArena()
        let ok = amqp_basic_consume(
            state, channel.number, arena.bytes(queue), arena.bytes(tag), 0, noAck ? 1 : 0,
            exclusive ? 1 : 0, arena.table(arguments))
        try checkReply("basic.consume '\(queue)'", channel: channel)
        guard let ok else { throw AMQPError(.protocolError, "basic.consume: no consume-ok") }
        let tag = CDecode.string(ok.pointee.consumer_tag)
        channel.consumers[tag] = sink
        return tag
    }

    func cancel(consumerTag: String, on channel: ChannelState) throws {
        let arena = CArena()
        _ = amqp_basic_cancel(state, channel.number, arena.bytes(consumerTag))
        try checkReply("basic.cancel", channel: channel)
        // Deliveries that arrived before cancel-ok sit in rabbitmq-c's
        // frame queue: hand them to the consumer before ending it.
        pumpFrames()
        channel.consumers.removeValue(forKey: consumerTag)?.handler(.ended(nil))
    }

    /// `basic.get`: the message, or nil when the queue is empty.
    func get(queue: String, noAck: Bool, maxBodySize: Int?, timeout: Duration, on channel: ChannelState) throws
        -> AMQPDelivery?
    {
        let arena = CArena()
        let reply = amqp_basic_get(state, channel.number, arena.bytes(queue), noAck ? 1 : 0)
        try checkReply("basic.get '\(queue)'", channel: channel)
        guard reply.reply.id == MethodID.basicGetOK else { return nil }
        let ok = reply.reply.decoded.assumingMemoryBound(to: amqp_basic_get_ok_t.self).pointee
        let exchange = CDecode.string(ok.exchange)
        let routingKey = CDecode.string(ok.routing_key)
        let delivery = try awaitGetContent(
            on: channel.number, deliveryTag: ok.delivery_tag, redelivered: ok.redelivered != 0, exchange: exchange,
            routingKey: routingKey, limit: maxBodySize, timeout: timeout)
        if !noAck { channel.acks.delivered(ok.delivery_tag) }
        return delivery
    }

    // MARK: Acknowledgements

    /// What an acknowledgement frame says about a delivery.
    enum Acknowledgement: Sendable {
        case ack
        case nack(requeue: Bool)
        case reject(requeue: Bool)

        var method: String {
            switch self {
            case .ack: "basic.ack"
            case .nack: "basic.nack"
            case .reject: "basic.reject"
            }
        }
    }

    /// Writes `basic.ack`/`basic.nack`/`basic.reject` for a delivery of
    /// `channel` now; a write failure fails the connection.
    func settle(_ settlement: Acknowledgement, deliveryTag: UInt64, multiple: Bool, on channel: ChannelState) throws {
        let status: Int32
        switch settlement {
        case .ack:
            status = amqp_basic_ack(state, channel.number, deliveryTag, multiple ? 1 : 0)
        case .nack(let requeue):
            status = amqp_basic_nack(state, channel.number, deliveryTag, multiple ? 1 : 0, requeue ? 1 : 0)
        case .reject(let requeue):
            status = amqp_basic_reject(state, channel.number, deliveryTag, requeue ? 1 : 0)
        }
        if status != 0 {
            let error = libraryError(status, during: settlement.method)
            fail(with: error)
            throw error
        }
        channel.acks.settledDirectly(deliveryTag, multiple: multiple)
    }

    /// An ack handed over without waiting (`AMQPChannel.enqueueAck`):
    /// coalesced with the other acks of this wake-up by `AckCoalescer`; a
    /// tag it does not track goes out as it is.
    func enqueueAck(_ deliveryTag: UInt64, on channel: ChannelState) {
        if channel.acks.ack(deliveryTag) {
            acksPending(on: channel)
        } else {
            let status = amqp_basic_ack(state, channel.number, deliveryTag, 0)
            if status != 0 { fail(with: libraryError(status, during: "basic.ack")) }
        }
    }

    // MARK: Publishing

    func selectConfirms(window: Int, on channel: ChannelState) throws {
        _ = amqp_confirm_select(state, channel.number)
        try checkReply("confirm.select", channel: channel)
        channel.confirms.confirmSelected(window: window)
    }
}
