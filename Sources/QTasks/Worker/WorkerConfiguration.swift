import Metrics
import Logging
import Tracing

/// How a ``Worker`` consumes and runs tasks. Every field has a default.
public struct WorkerConfiguration: Sendable {
    /// The queues to consume; each is declared (with its dead-letter queue)
    /// when the worker starts. Default `["default"]`. Names are checked by
    /// ``validate()`` before anything is declared: not empty, at most
    /// ``QueueNaming/longestTaskQueueName`` (238) bytes, no `amq.` prefix.
    public var queues: [String]
    /// The most task handlers running at once. Default 10; values below 1
    /// count as 1.
    public var concurrency: Int
    /// The most unacknowledged deliveries the broker hands this worker,
    /// across all its queues, 1...65535. nil (the default) means 4 ×
    /// `concurrency` (at most 65535, ``effectivePrefetch``),
    /// after Celery's `worker_prefetch_multiplier` default of 4: enough
    /// buffered that a free slot never waits for the network, few enough
    /// that other workers get a fair share.
    public var prefetch: Int?
    /// Queues with a concurrency of their own: at most that many tasks from
    /// the queue run at once, and the broker hands out at most that many of
    /// its deliveries (its prefetch), so a busy queue neither starves the
    /// others nor hoards messages other workers could run. Queues not
    /// listed have `prefetch` and share `concurrency`, which still bounds
    /// the total: make it at least the sum for fully separate pools.
    /// Default none.
    public var queueConcurrency: [String: Int] = [:]
    /// Bodies larger than this are rejected as bad input without being
    /// parsed, in bytes. Default 1 MiB (1_048_576).
    public var maxMessageBytes: Int
    /// The largest result message the worker publishes, in bytes: the
    /// result body sent to `reply_to` (and, when task ``events`` are
    /// recorded, the result they record). A larger result is not sent:
    /// the worker publishes an `error` result with
    /// ``ResultTooLargeError`` instead and dead-letters the delivery, so
    /// the task does not run again. nil means no limit of the worker's own;
    /// the broker's still applies (a result it refuses as too large ends
    /// the same way). Default 8 MiB (8_388_608), well under RabbitMQ 4's
    /// default `max_message_size` of 16 MiB; keep it at or under the
    /// broker's.
    public var maxResultBytes: Int? = 8_388_608
    /// How long running tasks may take to finish after graceful shutdown
    /// begins; then they are cancelled and requeued. nil means no limit:
    /// the worker waits for every running task however long it takes (a
    /// duration over about 31 years, a billion seconds, is that long too).
    /// Default 30 s.
    public var shutdownGracePeriod: Duration?
    /// The longest one task may run; nil (the default) means no limit, and
    /// so does `.zero` or less. A limit over about 31 years (a billion
    /// seconds) is that long. A task's own
    /// ``TaskOptions/timeLimit`` wins. A task over it is cancelled and
    /// fails with ``TaskTimeLimitError`` (status `error`; retried if its
    /// retry policy says so, else dead-lettered); its task-scoped
    /// dependencies are torn down with that error. Cancellation is
    /// cooperative: a handler that never awaits anything cancellable ends
    /// only when it returns.
    public var taskTimeLimit: Duration?
    /// The broker's delivery acknowledgement timeout: RabbitMQ's
    /// `consumer_timeout` (rabbitmq.conf, in milliseconds; default 30
    /// minutes since RabbitMQ 3.8.15), after which it closes the consuming
    /// channel of a delivery still unacknowledged, cancelling every task
    /// of that channel, and delivers the message again. A task longer than
    /// that would run again for ever. So the worker stops a task
    /// ``consumerTimeoutMargin`` before this, counted from its delivery:
    /// it fails with ``ConsumerTimeoutError`` through the task's retry
    /// policy and ends in the dead-letter queue, and the broker never
    /// closes the channel. Tasks with ``TaskOptions/acknowledgement``
    /// `.onStart` are exempt (their delivery is acknowledged before they
    /// run).
    ///
    /// AMQP does not tell the broker's value, nor does RabbitMQ's
    /// management API (3.x, 4.x). When the broker closes a channel for its
    /// timeout, its reply names the value (`Timeout value used: N ms`) and
    /// the worker uses that from then on (logged), whatever is set here,
    /// if it is shorter. A queue's own timeout (RabbitMQ 3.12+: the
    /// `x-consumer-timeout` argument or the `consumer-timeout` policy key)
    /// is not seen: set the shortest.
    ///
    /// Default nil: not known until the broker closes a channel for it.
    /// That first close cancels the tasks of the channel (they are
    /// redelivered) and teaches the worker the value; every later task is
    /// stopped before it. Set the broker's value (RabbitMQ's default is 30
    /// minutes) to avoid even that first close, at a cost: the deadline
    /// watches every task, about 6 µs of worker CPU per task (a no-op task
    /// costs about 23 µs without it; docs/performance.md), which is why it
    /// is not on by default. See docs/reliability.md, "Long tasks and
    /// consumer_timeout".
    public var consumerTimeout: Duration? = nil
    /// How long before ``consumerTimeout`` (from its delivery) the worker
    /// stops a task, to leave time for its error result, its dead letter
    /// and the ack. nil (the default): a tenth of the timeout, at least 1 s
    /// and at most 60 s (30 min → 60 s, 10 s → 1 s). Never more than half
    /// the timeout.
    public var consumerTimeoutMargin: Duration? = nil
    /// The retry policy of tasks registered without one
    /// (``TaskOptions/retry``). Default ``RetryPolicy/never``: a failure is
    /// dead-lettered at once.
    public var retryPolicy: RetryPolicy
    /// How tasks that fail with a transient infrastructure error
    /// (``TransientError``: `StateError` `.unavailable`,
    /// ``ResultStoreError`` `.unavailable`, your own conforming errors) are
    /// retried, whatever ``retryPolicy`` says: the broker holds the delay,
    /// and these retries do not use up the task's own attempts. Default
    /// ``TransientRetryPolicy/init(maxRetries:maxDuration:backoff:isTransient:)``:
    /// up to 10 retries, 1 s doubling to 60 s, within 10 minutes of the
    /// first transient failure; then the retry policy decides (by default:
    /// dead-lettered). ``TransientRetryPolicy/disabled`` turns them off. A
    /// task's ``TaskOptions/transientRetry`` wins.
    public var transientRetry = TransientRetryPolicy()
    /// The delays between attempts to consume again after the connection
    /// was lost (broker restart, dropped TCP connection, missed heartbeats,
    /// channel closed or consumer cancelled by the broker). Default 0.5 s
    /// doubling up to 5 s, with 50 % jitter: a broker that is back is
    /// consumed from again within about 5 s (one connection attempt per
    /// worker every 5 s is nothing to a broker; a longer cap only delays
    /// the recovery).
    public var reconnectBackoff: Backoff
    /// How many times in a row the worker tries to consume again before
    /// ``Worker/run()`` gives up and throws; nil (the default) means for
    /// ever, 0 means never (the first loss ends `run()` with its error).
    public var reconnectAttempts: Int?
    /// The worker's logger; tasks get it, with task metadata, through
    /// ``TaskContext/logger``. One line per task outcome at `info`
    /// (success) or `warning`/`error` (failure, bad input), written by the
    /// standard ``LoggingTaskMiddleware`` (see ``standardMiddleware``).
    public var logger: Logger
    /// Traces each delivery as a span `run <task name>`, the child of the
    /// context its headers carry (``Worker`` says what is recorded), through
    /// the standard ``TracingTaskMiddleware`` (see ``standardMiddleware``); nil
    /// (the default) means the tracer the process bootstrapped
    /// (`InstrumentationSystem.tracer`, a no-op unless the app
    /// bootstrapped one). Tests and apps that keep several tracers pass
    /// one here instead of bootstrapping.
    public var tracer: (any Tracer)? = nil

    /// Where the worker's metrics go (``WorkerMetrics``); nil (the default)
    /// means the process's (`MetricsSystem.factory`, a no-op unless the
    /// app bootstrapped one). Tests pass a `TestMetrics` here.
    public var metricsFactory: (any MetricsFactory)? = nil

    /// Run around every task, the first outermost, inside the standard
    /// middleware and before those given to ``Worker/init(broker:app:configuration:middleware:)``
    /// (see ``TaskMiddleware``). Empty by default.
    public var middleware: [any TaskMiddleware] = []

    /// Task events and heartbeats: where they are recorded (a result store,
    /// the events exchange) and how (``TaskEventRecording``). nil (the
    /// default): nothing is recorded, and the worker does exactly what it
    /// does without them. The recorder runs inside the standard middleware
    /// (so its events carry the span's trace id) and outside
    /// ``middleware``.
    public var events: TaskEventRecording? = nil

    /// Where workflows keep their joins, step ends and records
    /// (docs/workflows.md): a result store (`SQLiteResultStore`,
    /// `RedisResultStore`, ``MemoryResultStore``). nil (the default):
    /// chains run, but a workflow with a group is refused (error result
    /// and dead letter) and steps delivered twice may run twice. Every
    /// worker of a fleet must use the same store.
    public var workflowStore: (any WorkflowStore)? = nil

    /// Whether every task runs once per uuid (``TaskOptions/deduplicated``
    /// for tasks that do not say): a redelivered or republished task whose
    /// uuid already succeeded is acknowledged without running, its recorded
    /// result sent to `reply_to`. Costs two store writes per task. Needs
    /// ``workflowStore`` (``validate()`` refuses it without). Default false.
    public var deduplicatesTasks = false
    /// Runs a suspect delivery alone: one whose earlier delivery ended
    /// without being settled (a crash of the worker process, a lost
    /// connection), as a quorum queue's `x-delivery-count` header (or
    /// ``MessageHeaders/priorDeliveries``) of 1 or more shows. The worker
    /// stops taking deliveries, lets the running tasks finish, hands back
    /// what it buffered unstarted (a fresh copy each, confirmed, then the
    /// original acknowledged: its delivery count is not raised; it goes
    /// to the tail of its queue), runs the suspect, settles it, and goes
    /// on. A poison message that crashes the process again then raises
    /// only its own count, and the queue's delivery limit dead-letters it
    /// alone. Default true; needs a broker that can pause its consumers
    /// (``Broker/pauseConsuming()``: `RabbitMQBroker`), else nothing
    /// changes. Classic queues carry no delivery count: nothing is
    /// suspected there.
    public var isolatesSuspectDeliveries = true

    /// Whether the worker installs the package's own middleware, outermost
    /// and in this order: ``TracingTaskMiddleware`` (with ``tracer``),
    /// ``LoggingTaskMiddleware`` (the outcome's log line, to ``logger``)
    /// and ``MetricsTaskMiddleware``. True by default; turn it off to
    /// place them yourself (or leave one out) in ``middleware``.
    public var standardMiddleware = true

    /// Every parameter has the default documented on its property.
    public init(
        queues: [String] = ["default"],
        concurrency: Int = 10,
        prefetch: Int? = nil,
        maxMessageBytes: Int = 1_048_576,
        shutdownGracePeriod: Duration? = .seconds(30),
        taskTimeLimit: Duration? = nil,
        retryPolicy: RetryPolicy = .never,
        reconnectBackoff: Backoff = Backoff(initial: .milliseconds(500), multiplier: 2, maximum: .seconds(5), jitter: 0.5),
        reconnectAttempts: Int? = nil,
        logger: Logger = Logger(label: "qtasks.worker")
    ) {
        self.retryPolicy = retryPolicy
        self.reconnectBackoff = reconnectBackoff
        self.reconnectAttempts = reconnectAttempts
        self.queues = queues
        self.concurrency = concurrency
        self.prefetch = prefetch
        self.maxMessageBytes = maxMessageBytes
        self.shutdownGracePeriod = shutdownGracePeriod
        self.taskTimeLimit = taskTimeLimit
        self.logger = logger
    }

    /// `prefetch`, or 4 × `concurrency` when nil, at most 65535 (AMQP's
    /// limit, ``longestPrefetch``); at least 1. A `prefetch` over 65535 is
    /// refused by ``validate()``, which ``Worker/run()`` calls.
    public var effectivePrefetch: Int {
        max(1, prefetch ?? min(4 * min(effectiveConcurrency, Self.longestPrefetch), Self.longestPrefetch))
    }

    /// ``tracer``, else the bootstrapped one at the time of the call (the
    /// worker asks for each delivery).
    public var effectiveTracer: any Tracer {
        tracer ?? InstrumentationSystem.tracer
    }

    /// `concurrency`, at least 1.
    public var effectiveConcurrency: Int {
        max(1, concurrency)
    }

    /// What the worker consumes: each queue with ``queueConcurrency`` as
    /// its prefetch when it has one, else ``effectivePrefetch``.
    public var subscriptions: [QueueSubscription] {
        queues.map { QueueSubscription(queue: $0, prefetch: queueConcurrency[$0].map { max(1, $0) } ?? effectivePrefetch) }
    }
}
