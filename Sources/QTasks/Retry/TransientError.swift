import Foundation

/// An error that may say "this is transient": the infrastructure the task
/// needs (a State store, a result store, a service of your own) is
/// unavailable right now, and the same run is likely to succeed later.
///
/// The worker retries a task that fails with a transient error with
/// backoff, the broker holding the delay, even when the task has no retry
/// policy of its own, within ``WorkerConfiguration/transientRetry`` (default
/// ``TransientRetryPolicy/init(maxRetries:maxDuration:backoff:isTransient:)``:
/// 10 retries, 1 s doubling to 60 s, at most 10 minutes). `StateError`
/// `.unavailable` (QTasksState) and ``ResultStoreError`` `.unavailable`
/// conform.
///
/// Conform an error type of your own when its values are (or can be)
/// transient:
///
/// ```swift
/// struct PaymentGatewayDown: TransientError {}                 // always transient
/// extension MyDatabaseError: TransientError {
///     var isTransient: Bool { code == .connectionLost }       // some values only
/// }
/// ```
///
/// An error wrapped in a ``DependencyError`` (a dependency's factory threw
/// it: a State store that cannot be opened) counts as what it wraps.
public protocol TransientError: Error {
    /// Whether this error is transient; true unless the type says
    /// otherwise.
    var isTransient: Bool { get }
}

extension TransientError {
    public var isTransient: Bool { true }
}

extension ResultStoreError: TransientError {
    /// `.unavailable` only: the backend cannot be reached or refused the
    /// operation for now.
    public var isTransient: Bool { code == .unavailable }
}

/// How the worker retries tasks that fail with a transient infrastructure
/// error (``TransientError``): with backoff, the delay held by the broker as
/// for any retry (``RetryPolicy``), whatever the task's own retry policy
/// says, within a bounded number of retries and a bounded time.
///
/// Defaults: up to 10 retries, 1 s, 2 s, 4 s … doubling up to 60 s (20 %
/// jitter), and none scheduled to run more than 10 minutes after the first
/// transient failure; about 5 minutes of outage are ridden out. Then the
/// task's own ``RetryPolicy`` decides as for any error (with the worker's
/// default ``RetryPolicy/never``: dead-lettered, the error message saying
/// how long it was retried).
///
/// Transient retries are attempts (``TaskContext/attempt``, the result's
/// `retry` count them) but do not use up the task's own
/// ``RetryPolicy/maxAttempts``: the message counts them apart
/// (`x-qtasks-transient-retries`, `x-qtasks-transient-since`).
///
/// ```swift
/// configuration.transientRetry = .disabled                         // the old behaviour
/// configuration.transientRetry = TransientRetryPolicy(maxRetries: 30, maxDuration: .seconds(3600))
/// configuration.transientRetry.isTransient = { error in            // your own classification too
///     TransientRetryPolicy.isTransientByDefault(error) || error is URLError
/// }
/// ```
public struct TransientRetryPolicy: Sendable {
    /// Transient retries at most; 0 turns them off. Default 10.
    public var maxRetries: Int
    /// No transient retry is scheduled to run later than this after the
    /// first transient failure of the message; nil: no time bound. Default
    /// 10 minutes.
    public var maxDuration: Duration?
    /// The delays between transient retries. Default 1 s doubling up to
    /// 60 s, 20 % jitter.
    public var backoff: Backoff
    /// Which errors are transient. Default
    /// ``isTransientByDefault(_:)``.
    public var isTransient: @Sendable (any Error) -> Bool

    /// Every parameter has the default documented on its property.
    public init(
        maxRetries: Int = 10,
        maxDuration: Duration? = .seconds(600),
        backoff: Backoff = Backoff(initial: .seconds(1), multiplier: 2, maximum: .seconds(60), jitter: 0.2),
        isTransient: @escaping @Sendable (any Error) -> Bool = TransientRetryPolicy.isTransientByDefault
    ) {
        self.maxRetries = max(0, maxRetries)
        self.maxDuration = maxDuration
        self.backoff = backoff
        self.isTransient = isTransient
    }

    /// No transient retries: a transient error is an error like any other
    /// (the task's ``RetryPolicy`` decides).
    public static let disabled = TransientRetryPolicy(maxRetries: 0)

    /// Whether `error` is a ``TransientError`` whose ``TransientError/isTransient``
    /// is true, looking through ``DependencyError``s to the error their
    /// factory threw.
    public static func isTransientByDefault(_ error: any Error) -> Bool {
        var error = error
        for _ in 0..<8 {
            if let transient = error as? any TransientError { return transient.isTransient }
            guard let wrapper = error as? DependencyError, let underlying = wrapper.underlyingError else { return false }
            error = underlying
        }
        return false
    }

    /// What to do after a run failed with `error`; nil when the error is not
    /// transient (or transient retries are off): the task's own policy
    /// decides.
    ///
    /// - Parameters:
    ///   - retries: transient retries made before this run.
    ///   - since: when the first transient failure happened (Unix seconds),
    ///     nil if this is the first.
    ///   - now: the time now (Unix seconds).
    ///   - random: a value in 0..<1 for the jitter.
    public func decision(
        after error: any Error, retries: Int, since: Double?, now: Double, random: Double = Double.random(in: 0..<1)
    ) -> RetryDecision? {
        guard maxRetries > 0, isTransient(error) else { return nil }
        let elapsed = max(0, now - (since ?? now))
        guard retries < maxRetries else {
            return .giveUp(reason: "still failing after \(retries) transient-error retries over \(Self.format(elapsed)) s")
        }
        let delay = backoff.delay(forRetry: retries + 1, random: random)
        if let maxDuration, elapsed + Seconds.double(delay) > Seconds.double(Seconds.clamped(maxDuration)) {
            return .giveUp(
                reason: "still failing after \(retries) transient-error retries over \(Self.format(elapsed)) s "
                    + "(the limit is \(Self.format(Seconds.double(maxDuration))) s)")
        }
        return .retry(after: delay)
    }

    private static func format(_ seconds: Double) -> String {
        String(format: "%.1f", seconds)
    }
}

/// The transient-retry bookkeeping a message carries
/// (``MessageHeaders/transientRetries``, ``MessageHeaders/transientSince``).
struct TransientRetryCount: Sendable, Hashable {
    /// Transient retries made so far.
    var retries: Int
    /// When the first transient failure happened, Unix seconds.
    var since: Double?

    init(retries: Int = 0, since: Double? = nil) {
        self.retries = retries
        self.since = since
    }

    init(headers: [String: HeaderValue]) {
        switch headers[MessageHeaders.transientRetries] {
        case .int(let number)?: retries = Int(clamping: max(0, number))
        case .double(let number)? where number >= 0 && number < 1e15: retries = Int(number)
        case .string(let text)?: retries = max(0, Int(text) ?? 0)
        default: retries = 0
        }
        switch headers[MessageHeaders.transientSince] {
        case .double(let number)? where number.isFinite: since = number
        case .int(let number)?: since = Double(number)
        default: since = nil
        }
    }

    /// The headers of the next transient retry's copy.
    func next(now: Double) -> [String: HeaderValue] {
        [
            MessageHeaders.transientRetries: .int(Int64(retries + 1)),
            MessageHeaders.transientSince: .double(since ?? now),
        ]
    }
}
