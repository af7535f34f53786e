/// Per-task settings given at registration; nil fields use the worker's
/// (``WorkerConfiguration``).
///
/// ```swift
/// try app.register("charge", options: TaskOptions(retry: RetryPolicy(maxAttempts: 5), timeLimit: .seconds(20))) { ... }
/// ```
public struct TaskOptions: Sendable {
    /// The retry policy; nil uses ``WorkerConfiguration/retryPolicy``.
    public var retry: RetryPolicy?
    /// The longest one run may take; nil uses
    /// ``WorkerConfiguration/taskTimeLimit``, `.zero` (or less) means no
    /// limit even when the worker has one. A limit over about 31 years (a
    /// billion seconds) is that long.
    public var timeLimit: Duration?
    /// The task's default queue: where a ``TaskClient`` that knows the app
    /// sends it when the caller names no queue. nil: `"default"`. A
    /// producer may always send the task to another queue; a worker runs
    /// whatever arrives on the queues it consumes (list them in
    /// ``WorkerConfiguration/queues``; ``TaskApp/defaultQueues`` has them
    /// all).
    public var queue: String?

    public init(retry: RetryPolicy? = nil, timeLimit: Duration? = nil, queue: String? = nil) {
        self.retry = retry
        self.timeLimit = timeLimit
        self.queue = queue
    }
}
