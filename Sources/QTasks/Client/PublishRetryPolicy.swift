/// How a ``TaskClient`` retries a send whose broker connection was lost:
/// what Celery users get with its default publish retry policy.
///
/// A send is tried again, after a ``Backoff`` delay, when it failed with a
/// ``BrokerError`` `.connectionLost` (an established connection died, for
/// example because its cluster node stopped). Each retry goes through the
/// broker again, which connects anew (`RabbitMQBroker`: to the node after
/// the lost one), and through a new reply queue, since the old one died
/// with its connection. Once a retry has begun, a `.connectionFailed` on
/// the reconnect (no node accepted, as happens in the middle of an outage)
/// is retried too, within the same attempts.
///
/// Never retried: `.connectionFailed` on the first attempt (every node of
/// the list was just tried: a wrong URL or password fails at once),
/// `.refused` (a 403/404/406 would be refused again), `.unroutable`,
/// `.nacked` (the broker's explicit answer that it did not take the
/// message — a full queue with `reject-publish`, a quorum queue without a
/// majority — over a connection that works: it is backpressure for the
/// caller to handle, not an outage to ride out, and retrying within a
/// second would mostly be nacked again), `.timeout` (the connection may
/// be alive: retrying would reuse it), `.closed`.
///
/// A retried message keeps its uuid (its `message_id` and
/// `correlation_id`). The lost attempt may in fact have reached the broker
/// (its confirm was lost with the connection): the task can then run twice
/// with the same uuid, which is at-least-once as everywhere else, and what
/// idempotent tasks keyed by the uuid expect.
///
/// ```swift
/// // 6 tries in all, 0.1 s, 0.2 s, 0.4 s, 0.8 s, 1 s apart (-0 to -20 %).
/// let client = TaskClient(broker: broker, publishRetry: PublishRetryPolicy(
///     maxAttempts: 6, backoff: Backoff(initial: .milliseconds(100), maximum: .seconds(1))))
/// ```
public struct PublishRetryPolicy: Sendable, Hashable {
    /// Tries in all, the first included; 1 means no retry. Default 4 (a
    /// first try and Celery's 3 retries).
    public var maxAttempts: Int
    /// The delays before each retry. Default 0.2 s doubling,
    /// at most 1 s, 20 % jitter: 0.2, 0.4, 0.8 s nominal.
    public var backoff: Backoff

    /// - Parameters:
    ///   - maxAttempts: tries in all, at least 1 (default 4).
    ///   - backoff: the delays (default 0.2 s doubling up to 1 s, 20 % jitter).
    public init(
        maxAttempts: Int = 4,
        backoff: Backoff = Backoff(initial: .milliseconds(200), multiplier: 2, maximum: .seconds(1), jitter: 0.2)
    ) {
        self.maxAttempts = max(1, maxAttempts)
        self.backoff = backoff
    }

    /// Whether `error`, met on try `attempt` (1 for the first), deserves
    /// another try, before counting the attempts left.
    ///
    /// - Parameter afterLoss: whether an earlier try of the same send
    ///   failed with a lost connection.
    static func isRetryable(_ error: any Error, afterLoss: Bool) -> Bool {
        guard let error = error as? BrokerError else { return false }
        switch error.code {
        case .connectionLost: return true
        case .connectionFailed: return afterLoss
        default: return false
        }
    }
}
