/// How the worker processed one delivery: what a
/// ``TaskMiddleware/process(_:next:)`` gets back from `next`.
///
/// Only the worker makes reports, so a middleware that returns one has
/// let the delivery be processed and settled.
public struct TaskReport: Sendable {
    /// The delivery, as the worker processed it.
    public let delivery: Delivery
    /// How the task ended; its ``TaskOutcome/result`` is the result
    /// message (published to `reply_to` when there is one).
    public let outcome: TaskOutcome
    /// True when the outcome was applied: its result, retry copy or dead
    /// letter confirmed by the broker and the delivery acknowledged (or
    /// rejected to the broker's dead-lettering). False when that failed
    /// (the delivery was requeued, or went back with its lost connection,
    /// and runs again) and for a task the worker cancelled (requeued).
    public let isSettled: Bool
    /// The retry delay the broker applied, for a retried task that was
    /// settled.
    public let retryDelay: Duration?
    /// From the start of processing to the end of settling.
    public let duration: Duration

    /// The result message.
    public var result: TaskResult { outcome.result }

    /// The outcome's status word: `success`, `retry`, `error` or `cancel`.
    public var status: String {
        switch outcome {
        case .completed: "success"
        case .retry: "retry"
        case .failed, .rejected: "error"
        case .cancelled, .cancelledByTask: "cancel"
        }
    }

    init(delivery: Delivery, outcome: TaskOutcome, isSettled: Bool, retryDelay: Duration?, duration: Duration) {
        self.delivery = delivery
        self.outcome = outcome
        self.isSettled = isSettled
        self.retryDelay = retryDelay
        self.duration = duration
    }
}
