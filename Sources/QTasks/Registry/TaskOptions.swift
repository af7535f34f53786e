/// Per-task settings, given in a ``TaskDefinition`` (or at a registration
/// by name); nil fields use the worker's (``WorkerConfiguration``).
///
/// ```swift
/// static let charge = TaskDefinition("charge", arguments: Int.self, returning: Receipt.self,
///                                    options: TaskOptions(retry: RetryPolicy(maxAttempts: 5), timeLimit: .seconds(20)))
/// ```
public struct TaskOptions: Sendable {
    /// The retry policy; nil uses ``WorkerConfiguration/retryPolicy``.
    public var retry: RetryPolicy?
    /// The longest one run may take; nil uses
    /// ``WorkerConfiguration/taskTimeLimit``, `.zero` (or less) means no
    /// limit even when the worker has one. A limit over about 31 years (a
    /// billion seconds) is that long.
    public var timeLimit: Duration?
    /// The task's default queue: where a ``TaskClient`` sends it when the
    /// caller names no queue, for a typed send (the definition's options)
    /// or, for a send by name, when the client was given the app the task
    /// is registered in. nil: `"default"`. A
    /// producer may always send the task to another queue; a worker runs
    /// whatever arrives on the queues it consumes (list them in
    /// ``WorkerConfiguration/queues``; ``TaskApp/defaultQueues`` has them
    /// all).
    public var queue: String?
    /// Whether the worker records the task's arguments in its events and
    /// result-store record (``TaskEventRecording``). True by default; make
    /// it false for a task whose arguments are secret (a password, a card
    /// number): its records then say `{"omitted": true}` instead.
    public var recordsArguments: Bool
    /// How transient infrastructure errors (``TransientError``: a State
    /// store or result store that is unavailable) are retried; nil uses
    /// ``WorkerConfiguration/transientRetry``.
    public var transientRetry: TransientRetryPolicy?
    /// Whether the task runs once per uuid (docs/reliability.md,
    /// "Deduplication"): a delivery whose uuid already ran to success is
    /// acknowledged without running again (its recorded result is sent to
    /// `reply_to`), and one that arrives while another delivery of the
    /// uuid runs waits. Needs the worker's
    /// ``WorkerConfiguration/workflowStore``; nil uses
    /// ``WorkerConfiguration/deduplicatesTasks``.
    public var deduplicated: Bool?
    /// When the worker acknowledges the task's delivery. Default
    /// ``TaskAcknowledgement/afterRun`` (at least once); use
    /// ``TaskAcknowledgement/onStart`` (at most once) for a task that may
    /// run longer than the broker's `consumer_timeout`
    /// (``WorkerConfiguration/consumerTimeout``).
    public var acknowledgement: TaskAcknowledgement

    public init(
        retry: RetryPolicy? = nil, timeLimit: Duration? = nil, queue: String? = nil, recordsArguments: Bool = true,
        transientRetry: TransientRetryPolicy? = nil, deduplicated: Bool? = nil,
        acknowledgement: TaskAcknowledgement = .afterRun
    ) {
        self.acknowledgement = acknowledgement
        self.deduplicated = deduplicated
        self.retry = retry
        self.transientRetry = transientRetry
        self.timeLimit = timeLimit
        self.queue = queue
        self.recordsArguments = recordsArguments
    }
}

/// When a worker acknowledges a task's delivery to the broker
/// (``TaskOptions/acknowledgement``).
public enum TaskAcknowledgement: Sendable, Hashable {
    /// After the task ran and everything published for it (result, retry,
    /// dead letter) was confirmed: at least once. A worker that dies
    /// mid-task loses nothing, the broker delivers the task again. The
    /// delivery stays unacknowledged while the task runs, so the broker's
    /// `consumer_timeout` bounds the run: the worker stops the task just
    /// before it (``ConsumerTimeoutError``). The default.
    case afterRun
    /// Just before the handler runs (after the message was read and any
    /// deduplication check passed): at most once, like Celery's default
    /// (`acks_late=False`). Nothing stays unacknowledged while the task
    /// runs, so it may run for longer than the broker's `consumer_timeout`
    /// (no ``ConsumerTimeoutError``; ``TaskOptions/timeLimit`` still
    /// applies). Its result, retries and dead letter are published as
    /// usual, but a worker crash, or a publish that fails, loses the task
    /// or its result instead of running it again; a task the worker
    /// cancels (shutdown past its grace period, lost connection) is
    /// published to its queue again, to run from the start.
    case onStart
}
