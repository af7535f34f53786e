/// When and how often a failed task runs again.
///
/// A task that throws is retried while attempts remain and `shouldRetry`
/// accepts the error, after a ``Backoff`` delay. The delay is held by the
/// broker, not by the worker: the worker publishes a copy of the message
/// that becomes ready after the delay (``DelayedPublishing``; on RabbitMQ a
/// per-delay TTL queue) and acknowledges the original once the copy is
/// confirmed. So a waiting retry holds no unacknowledged message and no
/// worker memory.
///
/// Never retried, whatever the policy: bad input (``TaskInputError``), a
/// task cancelling itself (``TaskCancellation``), an error wrapped in
/// ``NonRetryableError``. Always retried while attempts remain, whatever
/// `shouldRetry` says: a ``TaskRetry`` thrown by the task (with its own
/// delay if it gives one). A timeout (``TaskTimeLimitError``) is an error
/// like any other: `shouldRetry` decides.
///
/// ```swift
/// // 5 runs in all, 2 s, 4 s, 8 s, 16 s apart (±20 %), only for network errors.
/// let policy = RetryPolicy(maxAttempts: 5, backoff: Backoff(initial: .seconds(2)), retryingOnly: [URLError.self])
/// static let fetch = TaskDefinition("fetch", arguments: String.self, returning: Data.self, options: TaskOptions(retry: policy))
/// ```
public struct RetryPolicy: Sendable {
    /// Runs in all, the first included; 1 means no retry. Default 3.
    public var maxAttempts: Int
    /// The delays between attempts.
    public var backoff: Backoff
    /// Whether an error thrown by the task deserves another attempt.
    /// Default: every error.
    public var shouldRetry: @Sendable (any Error) -> Bool

    /// - Parameters:
    ///   - maxAttempts: runs in all, at least 1 (default 3).
    ///   - backoff: the delays (default: 1 s doubling up to 300 s, 20 % jitter).
    ///   - shouldRetry: which errors retry (default: all).
    public init(
        maxAttempts: Int = 3,
        backoff: Backoff = Backoff(),
        shouldRetry: @escaping @Sendable (any Error) -> Bool = { _ in true }
    ) {
        self.maxAttempts = max(1, maxAttempts)
        self.backoff = backoff
        self.shouldRetry = shouldRetry
    }

    /// Retries only errors of exactly these types (compared by dynamic type,
    /// as `type(of: error)`).
    public init(maxAttempts: Int = 3, backoff: Backoff = Backoff(), retryingOnly types: [any Error.Type]) {
        let identifiers = Set(types.map { ObjectIdentifier($0) })
        self.init(maxAttempts: maxAttempts, backoff: backoff) { error in
            identifiers.contains(ObjectIdentifier(type(of: error)))
        }
    }

    /// Retries every error except those of these types.
    public init(maxAttempts: Int = 3, backoff: Backoff = Backoff(), retryingExcept types: [any Error.Type]) {
        let identifiers = Set(types.map { ObjectIdentifier($0) })
        self.init(maxAttempts: maxAttempts, backoff: backoff) { error in
            !identifiers.contains(ObjectIdentifier(type(of: error)))
        }
    }

    /// No retries: a failure goes to the dead-letter queue at once (the
    /// worker's default).
    public static let never = RetryPolicy(maxAttempts: 1)

    /// What to do after `attempt` (1 for the first run) failed with `error`.
    ///
    /// - Parameter random: a value in 0..<1 for the jitter.
    public func decision(after error: any Error, attempt: Int, random: Double = Double.random(in: 0..<1)) -> RetryDecision {
        switch error {
        case is TaskInputError:
            return .giveUp(reason: "bad input is never retried")
        case is TaskCancellation:
            return .giveUp(reason: "the task cancelled itself")
        case is NonRetryableError:
            return .giveUp(reason: "the task said not to retry")
        default:
            break
        }
        guard attempt < maxAttempts else {
            return .giveUp(reason: "attempt \(attempt) of \(maxAttempts) failed")
        }
        if let request = error as? TaskRetry {
            return .retry(after: max(.zero, request.delay ?? backoff.delay(forRetry: attempt, random: random)))
        }
        guard shouldRetry(error) else {
            return .giveUp(reason: "the retry policy does not retry \(type(of: error))")
        }
        return .retry(after: backoff.delay(forRetry: attempt, random: random))
    }
}

/// The outcome of ``RetryPolicy/decision(after:attempt:random:)``.
public enum RetryDecision: Sendable, Hashable {
    /// Run again after this delay.
    case retry(after: Duration)
    /// Stop: the failure is final (dead-lettered).
    case giveUp(reason: String)
}
