import AMQP
import QTasks
import Synchronization

/// One consuming session of a ``RabbitMQBroker``: the consumer connection
/// it runs on, one channel per queue, and the one stream all their
/// deliveries go into.
///
/// Each queue has a phase of its own, so that one queue the broker takes
/// away (deleted, locked by another connection's exclusive queue, its
/// channel closed) is consumed again on its own while the others go on.
/// Only the loss of the connection ends the stream with an error.
final class ConsumerSession: Sendable {
    enum Phase {
        /// `basic.consume` sent (or about to be): the queue's channel and
        /// the generation its deliveries' tokens carry.
        case starting
        case consuming(channel: AMQPChannel, generation: UInt64, tag: String)
        /// Its consumer was cancelled by ``pause()``: the channel stays
        /// open, so its deliveries can still be settled.
        case paused(channel: AMQPChannel, generation: UInt64)
        /// Refused or taken away: tried again by `retry` after a backoff.
        case waiting(retry: Task<Void, Never>?)
        /// Stopped (``RabbitMQBroker/stopConsuming()``) or the session ended.
        case ended
    }

    struct Queue {
        var subscription: QueueSubscription
        var phase: Phase = .starting
        /// Failures in a row: the backoff's retry number.
        var failures = 0
        /// The reply code of the last failure: a change is logged.
        var lastReplyCode: UInt16?
    }

    struct State {
        var queues: [String: Queue] = [:]
        /// Set by `stopConsuming()`: the stream finishes once every queue
        /// has ended.
        var stopping = false
        /// The stream was finished (normally or with an error), or the
        /// session was replaced: nothing goes on.
        var over = false
        /// Set by `pauseConsuming()` until `resumeConsuming()`.
        var paused = false
    }

    let connection: AMQPConnection
    let continuation: AsyncThrowingStream<Delivery, any Error>.Continuation
    let state: Mutex<State>
    /// Deliveries handed to the stream so far (``RabbitMQBroker/pauseConsuming()``).
    let yielded = Atomic<Int>(0)

    init(
        connection: AMQPConnection, subscriptions: [QueueSubscription],
        continuation: AsyncThrowingStream<Delivery, any Error>.Continuation
    ) {
        self.connection = connection
        self.continuation = continuation
        var state = State()
        for subscription in subscriptions { state.queues[subscription.queue] = Queue(subscription: subscription) }
        self.state = Mutex(state)
    }

    /// Ends the stream with `error` (the connection is lost), once.
    func fail(_ error: any Error) {
        let first = state.withLock { state in
            defer { state.over = true }
            return !state.over
        }
        if first { continuation.finish(throwing: error) }
    }

    /// After a queue ended while stopping: finishes the stream normally
    /// once no queue is left.
    func finishIfStopped() {
        let finish = state.withLock { state -> Bool in
            guard state.stopping, !state.over else { return false }
            let done = state.queues.values.allSatisfy { if case .ended = $0.phase { true } else { false } }
            if done { state.over = true }
            return done
        }
        if finish { continuation.finish() }
    }

    /// Marks the session over without finishing its stream (a new session
    /// replaces it: the worker has already seen this one's stream end) and
    /// returns the queues' channels and retries to close and cancel.
    func end() -> (channels: [AMQPChannel], retries: [Task<Void, Never>]) {
        state.withLock { state in
            state.over = true
            var channels: [AMQPChannel] = []
            var retries: [Task<Void, Never>] = []
            for (name, queue) in state.queues {
                switch queue.phase {
                case .consuming(let channel, _, _), .paused(let channel, _): channels.append(channel)
                case .waiting(let retry?): retries.append(retry)
                case .waiting(nil), .starting, .ended: break
                }
                state.queues[name]?.phase = .ended
            }
            return (channels, retries)
        }
    }
}
