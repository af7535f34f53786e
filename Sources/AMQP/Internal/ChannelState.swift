import CRabbitMQ
import Synchronization

/// Whether a channel is still open, readable from any thread: the owner
/// thread records why it closed (the broker's `channel.close`, this
/// process's, or the connection's end), and every ``AMQPChannel`` value
/// naming the channel refuses acks, rejects and publishes from then on
/// without a trip to the owner thread (and never sends a frame for them).
final class ChannelLifetime: Sendable {
    private let reason = Mutex<AMQPError?>(nil)

    /// Why the channel closed; nil while it is open.
    var closeReason: AMQPError? { reason.withLock { $0 } }

    /// Records the first reason; later ones (the connection's end after a
    /// channel close) do not replace it.
    func close(_ error: AMQPError) {
        reason.withLock { current in
            if current == nil { current = error }
        }
    }
}

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
    var publishWaiters: [PublishID: PublishWaiter] = [:]
    /// Messages `confirms` holds back, until `nextHeld()` hands them out.
    var heldMessages: [PublishID: OutgoingMessage] = [:]
    private var nextPublishID: PublishID = 1
    var consumers: [String: ConsumerSink] = [:]
    /// Delivery tags awaiting acknowledgement, and acks to coalesce.
    var acks = AckCoalescer()
    /// Shared with the ``AMQPChannel`` values that name this channel.
    let lifetime = ChannelLifetime()

    init(id: UInt64, number: amqp_channel_t) {
        self.id = id
        self.number = number
    }

    /// Names a new publish and remembers its caller.
    func registerPublish(_ waiter: PublishWaiter) -> PublishID {
        let id = nextPublishID
        nextPublishID += 1
        publishWaiters[id] = waiter
        return id
    }

    /// Tells the caller of a publish its `result`.
    func completePublish(_ id: PublishID, _ result: Result<Void, any Error>) {
        heldMessages[id] = nil
        publishWaiters.removeValue(forKey: id)?.complete(result)
    }

    /// Fails everything still waiting on this channel; from now on the
    /// channel counts as closed for every ``AMQPChannel`` naming it.
    func fail(with error: AMQPError) {
        lifetime.close(error)
        for id in confirms.channelFailed() { completePublish(id, .failure(error)) }
        // Nothing should be left; if a publish was between write and report,
        // it must still not wait for ever.
        for id in Array(publishWaiters.keys) { completePublish(id, .failure(error)) }
        for (_, consumer) in consumers { consumer.handler(.ended(error)) }
        consumers.removeAll()
    }
}

/// Who waits for a publish: one caller, one message of a batch, or a
/// callback run on the owner thread (no Swift continuation to resume).
enum PublishWaiter {
    case single(CheckedContinuation<Void, any Error>)
    case batch(PublishBatch, index: Int)
    case callback(@Sendable (Result<Void, AMQPError>) -> Void)

    func complete(_ result: Result<Void, any Error>) {
        switch self {
        case .single(let continuation): continuation.resume(with: result)
        case .batch(let batch, let index): batch.complete(index, result)
        case .callback(let callback):
            callback(result.mapError { $0 as? AMQPError ?? AMQPError(.connectionClosed, "\($0)") })
        }
    }
}

/// The outcomes of a batch of publishes, collected on the owner thread;
/// its caller is resumed once, when the last one is known. Only the owner
/// thread touches it, so it needs no lock.
final class PublishBatch {
    private var results: [Result<Void, AMQPError>?]
    private var remaining: Int
    private let continuation: CheckedContinuation<[Result<Void, AMQPError>], Never>

    init(count: Int, continuation: CheckedContinuation<[Result<Void, AMQPError>], Never>) {
        self.results = Array(repeating: nil, count: count)
        self.remaining = count
        self.continuation = continuation
        if count == 0 { continuation.resume(returning: []) }
    }

    func complete(_ index: Int, _ result: Result<Void, any Error>) {
        guard results[index] == nil else { return }
        results[index] = result.mapError { error in
            error as? AMQPError ?? AMQPError(.connectionClosed, "\(error)")
        }
        remaining -= 1
        if remaining == 0 { continuation.resume(returning: results.map { $0! }) }
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
