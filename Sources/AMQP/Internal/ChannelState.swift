import CRabbitMQ

/// A message to publish, as `AMQPChannel.publish` received it.
struct OutgoingMessage {
    var exchange: String
    var routingKey: String
    var mandatory: Bool
    var properties: AMQPProperties
    var body: [UInt8]

    /// What a `basic.return` of this message would carry, to pair the two;
    /// nil when the broker never returns it (not mandatory).
    var returnKey: PublisherConfirmStateMachine.ReturnKey? {
        guard mandatory else { return nil }
        return .init(exchange: exchange, routingKey: routingKey, bodySize: UInt64(body.count), properties: properties)
    }
}

/// One open channel, as its connection's owner thread sees it: the protocol
/// state (value types, see `StateMachines/`) and what waits on it
/// (continuations, consumer handlers), which the state machines name by id.
final class ChannelState {
    typealias PublishID = PublisherConfirmStateMachine.PublishID

    /// Unique for the life of the process, unlike the channel number, which
    /// is reused: an operation names the channel by id so that a delivery tag
    /// of a closed channel can never reach a new channel with the same number.
    let id: UInt64
    let number: amqp_channel_t

    /// The confirm window and how each publish ends.
    var confirms = PublisherConfirmStateMachine()
    /// The callers of publishes not yet done, by the id `confirms` knows.
    var publishWaiters: [PublishID: CheckedContinuation<Void, any Error>] = [:]
    /// Messages `confirms` holds back, until `nextHeld()` hands them out.
    var heldMessages: [PublishID: OutgoingMessage] = [:]
    private var nextPublishID: PublishID = 1
    var consumers: [String: ConsumerSink] = [:]
    /// Delivery tags awaiting acknowledgement, and acks to coalesce.
    var acks = AckCoalescer()

    init(id: UInt64, number: amqp_channel_t) {
        self.id = id
        self.number = number
    }

    /// Names a new publish and remembers its caller.
    func registerPublish(_ continuation: CheckedContinuation<Void, any Error>) -> PublishID {
        let id = nextPublishID
        nextPublishID += 1
        publishWaiters[id] = continuation
        return id
    }

    /// Resumes the caller of a publish with `result`.
    func completePublish(_ id: PublishID, _ result: Result<Void, any Error>) {
        heldMessages[id] = nil
        publishWaiters.removeValue(forKey: id)?.resume(with: result)
    }

    /// Fails everything still waiting on this channel.
    func fail(with error: AMQPError) {
        for id in confirms.channelFailed() { completePublish(id, .failure(error)) }
        // Nothing should be left; if a publish was between write and report,
        // it must still not wait for ever.
        for (id, _) in publishWaiters { completePublish(id, .failure(error)) }
        for (_, consumer) in consumers { consumer.handler(.ended(error)) }
        consumers.removeAll()
    }
}

/// Where a consumer's deliveries go, called on the owner thread.
struct ConsumerSink {
    /// Deliveries of a no-ack consumer need no acknowledgement tracking.
    let noAck: Bool
    let handler: @Sendable (AMQPConsumerEvent) -> Void
    /// Bodies over this many bytes are dropped unread; nil: no limit.
    var maxBodySize: Int? = nil
}
