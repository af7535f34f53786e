/// Thrown by a task to ask for another attempt, whatever the retry policy's
/// `shouldRetry` says (attempts are still limited by `maxAttempts`; after
/// the last one the task fails with this error as its reason).
///
/// ```swift
/// guard service.isReady else { throw TaskRetry("service not ready", after: .seconds(30)) }
/// ```
public struct TaskRetry: Error, Sendable, Hashable, CustomStringConvertible {
    /// Why, for logs and the final traceback.
    public var reason: String
    /// How long to wait before the next attempt, instead of the policy's
    /// backoff; nil uses the backoff. A negative delay is none; the worker
    /// cuts one over about 31 years (a billion seconds) to that, and a
    /// broker may round it (``DelayedPublishing``).
    public var delay: Duration?

    public init(_ reason: String, after delay: Duration? = nil) {
        self.reason = reason
        self.delay = delay
    }

    public var description: String { "retry requested: \(reason)" }
}

/// Wraps an error that must not be retried, whatever the retry policy says:
/// the task fails at once and goes to the dead-letter queue. The result's
/// traceback names the wrapped error's type and message.
///
/// ```swift
/// guard let user = try await users.find(id) else { throw NonRetryableError("no user \(id)") }
/// ```
public struct NonRetryableError: Error, Sendable, CustomStringConvertible {
    /// The wrapped error's description.
    public var failure: TaskFailure

    /// Wraps `error`.
    public init(_ error: any Error) {
        self.failure = TaskFailure(error)
    }

    /// A plain message (error type `NonRetryableError`).
    public init(_ message: String) {
        self.failure = TaskFailure(errorType: "NonRetryableError", message: message)
    }

    public var description: String { failure.message }
}
