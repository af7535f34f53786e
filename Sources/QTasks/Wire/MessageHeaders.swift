/// The `x-qtasks-*` headers the worker writes and reads (docs/wire-format.md).
public enum MessageHeaders {
    /// Integer, 1 for the first run: the attempt this message is for.
    public static let attempt = "x-qtasks-attempt"
    /// Double, Unix seconds: when the first attempt failed (retry copies
    /// and dead letters).
    public static let firstFailedAt = "x-qtasks-first-failed-at"
    /// Double, Unix seconds: when the last attempt failed (dead letters).
    public static let failedAt = "x-qtasks-failed-at"
    /// String: the error type of the last failure.
    public static let errorType = "x-qtasks-error-type"
    /// String: the error message of the last failure.
    public static let errorMessage = "x-qtasks-error-message"
    /// String: the queue the message was consumed from (dead letters).
    public static let originQueue = "x-qtasks-origin-queue"
    /// Integer: how many attempts ran (dead letters).
    public static let attempts = "x-qtasks-attempts"
    /// Set by `qtasks dlq replay` on the copy it publishes (Unix seconds).
    public static let replayedAt = "x-qtasks-replayed-at"
    /// On a dead-lettered workflow step: the workflow's uuid.
    public static let workflow = "x-qtasks-workflow"
    /// Double, seconds: the delay applied before this retry (retry copies).
    public static let retryDelay = "x-qtasks-retry-delay"
    /// Integer: how many of the retries so far were for a transient
    /// infrastructure error (``TransientRetryPolicy``; retry copies and
    /// dead letters). They do not count against the task's own
    /// ``RetryPolicy/maxAttempts``.
    public static let transientRetries = "x-qtasks-transient-retries"
    /// Double, Unix seconds: when the first transient failure happened
    /// (``TransientRetryPolicy/maxDuration`` counts from it).
    public static let transientSince = "x-qtasks-transient-since"

    /// Double, Unix seconds: the task must not run before then. Set by the
    /// worker on the copy of a message it deferred (a Celery `eta`, a
    /// Dramatiq `options.eta`, a Taskiq `labels.delay`), so that a relative
    /// delay is not applied twice; when present it wins over the format's
    /// own field.
    public static let notBefore = "x-qtasks-not-before"

    /// Integer: on the copy a worker hands back unstarted while it runs a
    /// suspect delivery alone, the deliveries the original had behind it
    /// (its quorum queue's `x-delivery-count`, plus this header of its
    /// own): a fresh message's count starts at 0 again, this keeps a
    /// suspect a suspect (docs/reliability.md, "Poison messages").
    public static let priorDeliveries = "x-qtasks-prior-deliveries"

    /// Headers the broker adds when it dead-letters a message (and the
    /// delivery counts); dropped from retry copies and replays so they do
    /// not grow without end and a new attempt starts unsuspected.
    public static let brokerDeathHeaders: Set<String> = [
        "x-death", "x-first-death-exchange", "x-first-death-queue", "x-first-death-reason",
        "x-last-death-exchange", "x-last-death-queue", "x-last-death-reason", "x-delivery-count",
        priorDeliveries,
    ]
}
