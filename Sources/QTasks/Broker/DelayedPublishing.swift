/// A broker that can hold a message for a while before it becomes ready in
/// its queue: what retries with backoff need, so that a waiting retry costs
/// the worker neither memory nor an unacknowledged delivery.
///
/// Both shipped brokers implement it. A ``Worker`` on a broker without it
/// republishes retries at once (no delay) and logs a warning when it starts.
public protocol DelayedPublishing: Broker {
    /// Publishes `message` so that it arrives in `queue` after about
    /// `delay`; returns once the broker has taken responsibility for
    /// it (RabbitMQ: publisher confirm).
    ///
    /// - Returns: the delay the broker applied, which may differ from
    ///   `delay` (RabbitMQ rounds it to one of a fixed set of delays).
    /// - Throws: ``BrokerError`` when the broker refuses the message or is
    ///   unreachable.
    @discardableResult
    func publish(_ message: Message, to queue: String, after delay: Duration) async throws -> Duration
}
