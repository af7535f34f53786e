import CRabbitMQ

/// A publish waiting for its publisher confirm, or for room in the window.
struct PendingPublish {
    var exchange: String
    var routingKey: String
    var mandatory: Bool
    var properties: AMQPProperties
    var body: [UInt8]
    var continuation: CheckedContinuation<Void, any Error>
}

/// One open channel, as its connection's owner thread sees it.
final class ChannelState {
    /// Unique for the life of the process, unlike the channel number, which
    /// is reused: an operation names the channel by id so that a delivery tag
    /// of a closed channel can never reach a new channel with the same number.
    let id: UInt64
    let number: amqp_channel_t

    var confirmWindow: Int? = nil
    var nextPublishSequence: UInt64 = 1
    /// Publishes sent and not yet confirmed, in sequence order.
    var unconfirmed: [(sequence: UInt64, continuation: CheckedContinuation<Void, any Error>)] = []
    var unconfirmedStart = 0
    /// Publishes held back while the window is full, in order.
    var waiting: [PendingPublish] = []
    var waitingStart = 0
    /// Set by `basic.return`; the next confirm is for the returned message.
    var pendingReturn: (code: UInt16, text: String)? = nil
    var consumers: [String: ConsumerSink] = [:]
    /// Delivery tags awaiting acknowledgement, and acks to coalesce.
    var acks = AckCoalescer()

    init(id: UInt64, number: amqp_channel_t) {
        self.id = id
        self.number = number
    }

    var unconfirmedCount: Int { unconfirmed.count - unconfirmedStart }
    /// True unless confirm mode is on and its window is full.
    var hasRoomInWindow: Bool { confirmWindow.map { unconfirmedCount < $0 } ?? true }
    var waitingCount: Int { waiting.count - waitingStart }

    /// Removes and returns the continuations a `basic.ack`/`basic.nack`
    /// settles.
    func settle(upTo tag: UInt64, multiple: Bool) -> [(UInt64, CheckedContinuation<Void, any Error>)] {
        var settled: [(UInt64, CheckedContinuation<Void, any Error>)] = []
        if multiple {
            while unconfirmedStart < unconfirmed.count, unconfirmed[unconfirmedStart].sequence <= tag {
                settled.append(unconfirmed[unconfirmedStart])
                unconfirmedStart += 1
            }
        } else if unconfirmedStart < unconfirmed.count, unconfirmed[unconfirmedStart].sequence == tag {
            settled.append(unconfirmed[unconfirmedStart])
            unconfirmedStart += 1
        } else if let index = unconfirmed[unconfirmedStart...].firstIndex(where: { $0.sequence == tag }) {
            // RabbitMQ may confirm out of order when messages go to
            // different queues.
            settled.append(unconfirmed[index])
            unconfirmed.remove(at: index)
        }
        compact()
        return settled
    }

    func popWaiting() -> PendingPublish? {
        guard waitingStart < waiting.count else { return nil }
        let next = waiting[waitingStart]
        waitingStart += 1
        if waitingStart == waiting.count {
            waiting.removeAll(keepingCapacity: true)
            waitingStart = 0
        }
        return next
    }

    private func compact() {
        if unconfirmedStart == unconfirmed.count {
            unconfirmed.removeAll(keepingCapacity: true)
            unconfirmedStart = 0
        } else if unconfirmedStart > 1024 && unconfirmedStart * 2 > unconfirmed.count {
            unconfirmed.removeFirst(unconfirmedStart)
            unconfirmedStart = 0
        }
    }

    /// Fails everything still waiting on this channel.
    func fail(with error: AMQPError) {
        for entry in unconfirmed[unconfirmedStart...] { entry.continuation.resume(throwing: error) }
        unconfirmed.removeAll()
        unconfirmedStart = 0
        while let pending = popWaiting() { pending.continuation.resume(throwing: error) }
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
