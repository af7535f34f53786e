/// The transport a ``Worker`` and a ``TaskClient`` run on.
///
/// A broker moves opaque messages between named queues and offers the three
/// delivery guarantees the worker builds on: a published message is durable
/// once `publish` returns (publisher confirms on RabbitMQ), a consumed
/// message stays owned by the broker until it is acknowledged, and a message
/// whose consumer goes away unacknowledged is delivered again.
///
/// Two implementations ship: `RabbitMQBroker` (module `QTasksRabbitMQ`) and
/// ``MemoryBroker`` for fast tests. Queue names are plain strings; a
/// broker maps them to its own routing (RabbitMQ: the default exchange, with
/// the queue name as routing key).
public protocol Broker: Sendable {
    /// Declares a task queue and its dead-letter queue (named
    /// ``QueueNaming/deadLetterQueue(for:)``), both durable. Idempotent.
    ///
    /// - Throws: ``BrokerError`` when the broker refuses the declaration (for
    ///   example a queue that exists with other arguments) or is unreachable.
    func declareTaskQueue(_ name: String) async throws

    /// Starts consuming the given queues, at most `prefetch` unacknowledged
    /// deliveries at a time in total.
    ///
    /// The returned stream ends normally after ``stopConsuming()``, and with an
    /// error when the connection is lost. Deliveries already handed out stay
    /// valid until acknowledged or rejected (or the connection is lost).
    func consume(queues: [String], prefetch: Int) async throws -> AsyncThrowingStream<Delivery, any Error>

    /// Starts consuming the given queues, each with its own prefetch, into
    /// one stream; otherwise as ``consume(queues:prefetch:)``. The default
    /// implementation calls that with the largest prefetch.
    ///
    /// A broker may recover one queue on its own while the connection
    /// lives on: `RabbitMQBroker` consumes each queue on a channel of its
    /// own and declares and consumes again, after a backoff, a queue that
    /// was deleted or refused, without ending the stream; that queue's
    /// unsettled deliveries can then no longer be settled
    /// (``canSettle(_:)`` is false), the other queues' still can.
    func consume(_ subscriptions: [QueueSubscription]) async throws -> AsyncThrowingStream<Delivery, any Error>

    /// Cancels the consumers started by ``consume(queues:prefetch:)``: no new
    /// deliveries arrive, the stream finishes once what was already received
    /// has been handed out. Deliveries not yet acknowledged stay owned by
    /// this consumer until acknowledged or rejected.
    func stopConsuming() async

    /// Cancels the consumers of the current ``consume(_:)`` stream for a
    /// while, without ending the stream or closing anything: the
    /// deliveries in hand can still be acknowledged or rejected, and no
    /// new ones arrive until ``resumeConsuming()``. The worker runs a
    /// suspect delivery alone this way (docs/reliability.md, "Poison
    /// messages").
    ///
    /// - Returns: how many deliveries the current stream was handed in
    ///   all, once no more can arrive: the ones not yet read from the
    ///   stream are those it buffers. Nil when this broker cannot pause
    ///   (the default) or consumes nothing.
    func pauseConsuming() async -> Int?

    /// Starts again the consumers that ``pauseConsuming()`` cancelled
    /// (not after ``stopConsuming()``). Default: nothing.
    func resumeConsuming() async

    /// Publishes many messages, pipelined, and returns when every one is
    /// settled (confirmed by the broker, or failed): each one's outcome, in
    /// order, failures as ``publish(_:to:mandatory:)`` would throw them.
    /// A default implementation publishes them concurrently, one by one.
    ///
    /// - Throws: ``BrokerError`` when nothing could be published at all
    ///   (no connection).
    func publish(batch publications: [Publication]) async throws -> [Result<Void, any Error>]

    /// Publishes a message to a queue and returns once the broker has taken
    /// responsibility for it (RabbitMQ: publisher confirm received).
    ///
    /// - Parameters:
    ///   - message: the body and properties to publish.
    ///   - queue: the queue (default exchange, this routing key).
    ///   - mandatory: when true and no queue takes the message, the
    ///     call throws a ``BrokerError`` with code `.unroutable`.
    func publish(_ message: Message, to queue: String, mandatory: Bool) async throws

    /// Acknowledges a delivery: the broker forgets the message.
    func acknowledge(_ delivery: Delivery) async throws

    /// Publishes `message` to `queue` and, once the broker has taken
    /// responsibility for it (as ``publish(_:to:mandatory:)``), acknowledges
    /// `delivery`; returns as soon as the publish is handed over, without
    /// waiting for either. `completion` says how it ended: it is called
    /// exactly once, on a thread of the broker's choosing (RabbitMQ: the
    /// publishing connection's own thread), and must be quick.
    ///
    /// The worker settles a task that has nothing but its result to send
    /// this way, so that its concurrency slot is not held for a confirm's
    /// round trip: at-least-once holds as before (the ack never goes before
    /// the confirm). On a failed publish nothing is acknowledged, and the
    /// caller decides what becomes of the delivery.
    ///
    /// The default implementation runs ``publish(_:to:mandatory:)`` then
    /// ``acknowledge(_:)`` in a task of its own.
    func publish(
        _ message: Message, to queue: String, mandatory: Bool, thenAcknowledge delivery: Delivery,
        completion: @escaping @Sendable (ConfirmedAcknowledgement) -> Void
    ) async

    /// Rejects a delivery. With `requeue` the message goes back to its queue
    /// (and is delivered again, possibly to another worker); without it the
    /// broker drops it or dead-letters it by its queue's policy.
    func reject(_ delivery: Delivery, requeue: Bool) async throws

    /// Whether `delivery` can still be acknowledged or rejected: false once
    /// the connection (or consumer session) it came on is gone, when the
    /// broker has already put it back in its queue for another delivery.
    /// The worker neither starts such a delivery (one still buffered when
    /// the connection was lost) nor publishes anything for it (a result, a
    /// retry, a dead letter, a workflow's next step): the redelivery does.
    /// Cheap: called once or twice per delivery. Default: true.
    func canSettle(_ delivery: Delivery) -> Bool

    /// Creates a private queue for results addressed to this client and starts
    /// consuming it. The queue lives as long as the broker connection.
    func makeReplyQueue() async throws -> ReplyQueue

    /// Closes connections. Unacknowledged deliveries return to their queues.
    func close() async
}

extension Broker {
    public func canSettle(_ delivery: Delivery) -> Bool { true }

    public func publish(
        _ message: Message, to queue: String, mandatory: Bool, thenAcknowledge delivery: Delivery,
        completion: @escaping @Sendable (ConfirmedAcknowledgement) -> Void
    ) async {
        Task {
            do {
                try await publish(message, to: queue, mandatory: mandatory)
            } catch {
                completion(.publishFailed(error))
                return
            }
            do {
                try await acknowledge(delivery)
                completion(.acknowledged)
            } catch {
                completion(.acknowledgementFailed(error))
            }
        }
    }

    public func pauseConsuming() async -> Int? { nil }

    public func resumeConsuming() async {}

    public func consume(_ subscriptions: [QueueSubscription]) async throws -> AsyncThrowingStream<Delivery, any Error> {
        try await consume(queues: subscriptions.map(\.queue), prefetch: subscriptions.map(\.prefetch).max() ?? 1)
    }
}

/// How ``Broker/publish(_:to:mandatory:thenAcknowledge:completion:)``
/// ended.
public enum ConfirmedAcknowledgement: Sendable {
    /// The broker confirmed the message and the acknowledgement of the
    /// delivery was handed over.
    case acknowledged
    /// The message was not confirmed (refused, returned as unroutable, the
    /// channel or connection closed): nothing was acknowledged. The error
    /// is what ``Broker/publish(_:to:mandatory:)`` would have thrown.
    case publishFailed(any Error)
    /// The message was confirmed, but the delivery could no longer be
    /// acknowledged (its channel or connection is gone: the broker has
    /// requeued it).
    case acknowledgementFailed(any Error)
}

/// A private queue on which a ``TaskClient`` receives results.
public struct ReplyQueue: Sendable {
    /// The queue name to put in a task message's `reply_to`.
    public let name: String
    /// The messages arriving on it (already acknowledged: results are
    /// correlated and dropped when nobody waits for them).
    public let messages: AsyncThrowingStream<Message, any Error>

    public init(name: String, messages: AsyncThrowingStream<Message, any Error>) {
        self.name = name
        self.messages = messages
    }
}

/// Queue names derived from a task queue's name.
public enum QueueNaming {
    /// The dead-letter queue of `queue`: `"<queue>.dlq"`.
    public static func deadLetterQueue(for queue: String) -> String { queue + ".dlq" }
}
