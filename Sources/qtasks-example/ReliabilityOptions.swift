import ArgumentParser
import CommandSupport
import QTasks
import QTasksRabbitMQ

/// The example worker's options for retries, time limits and queue types.
struct ReliabilityOptions: ParsableArguments {
    @OptionGroup
    var queueTypes: QueueTypeOptions

    @Option(help: "Runs per task in all, the first included (1: no retries).")
    var maxAttempts: Int = 1

    // A delay the broker cannot hold is refused as the option is parsed,
    // not discovered on the first retry.
    static let retryDelayRequirement = "--retry-delay and --retry-max-delay must be seconds from 0 to 2592000 (30 days)"

    @Option(
        help: "Seconds before the first retry; each next one doubles (default: 1).",
        transform: SecondsOption.parser(Self.retryDelayRequirement) { (0...2_592_000).contains($0) })
    var retryDelay: Duration = .seconds(1)

    @Option(
        help: "Longest delay between retries, in seconds (default: 300).",
        transform: SecondsOption.parser(Self.retryDelayRequirement) { (0...2_592_000).contains($0) })
    var retryMaxDelay: Duration = .seconds(300)

    @Option(help: "Fraction 0...1 of each retry delay taken off at random.")
    var retryJitter: Double = 0.2

    @Option(
        help: """
            Retries of a task whose State or result store is unavailable (a transient error), \
            1 s doubling to 60 s, within 10 minutes; they do not count against --max-attempts (0: none).
            """)
    var transientRetries: Int = 10

    @Option(
        help: "Longest a task may run, in seconds (default: no limit; tasks may set their own).",
        transform: SecondsOption.parser("--task-time-limit must be seconds, more than 0 and at most 2592000 (30 days)") {
            $0 > 0 && $0 <= 2_592_000
        })
    var taskTimeLimit: Duration?

    @Option(
        help: """
            The broker's consumer_timeout in seconds (RabbitMQ's rabbitmq.conf value / 1000; RabbitMQ's default is 1800). A task \
            still unacknowledged near it is stopped and fails with ConsumerTimeoutError (retried per --max-attempts, then \
            dead-lettered) instead of the broker closing the channel and running it again for ever; long_sleep is acknowledged on \
            start and exempt. Default 0: not set, learnt from the broker's first channel close for it (that close cancels the \
            channel's tasks once); setting it avoids that close and costs about 6 us of CPU per task.
            """,
        transform: SecondsOption.parser("--consumer-timeout must be 0 (not set) or seconds from 1 to 2592000 (30 days)") {
            $0 == 0 || (1...2_592_000).contains($0)
        })
    var consumerTimeout: Duration = .zero

    func validate() throws {
        guard maxAttempts >= 1 else { throw ValidationError("--max-attempts must be at least 1") }
        guard (0...1).contains(retryJitter) else { throw ValidationError("--retry-jitter must be 0...1") }
        guard (0...1000).contains(transientRetries) else { throw ValidationError("--transient-retries must be 0...1000") }
    }

    @Flag(help: "Run each task once per uuid: a redelivered or republished task whose uuid already succeeded is acknowledged without running again, its recorded result sent to reply_to (docs/reliability.md, \"Deduplication\"). Needs --result-store.")
    var deduplicate = false

    func apply(to configuration: inout RabbitMQBrokerConfiguration, maxMessageBytes: Int) {
        queueTypes.apply(to: &configuration)
        // Bodies between the worker's limit and this one are read and
        // dead-lettered by the worker with its x-qtasks-* headers; larger
        // ones are dropped unread and dead-lettered by RabbitMQ (x-death,
        // body intact): memory stays bounded by this limit.
        configuration.maxMessageBytes = max(maxMessageBytes, 16 * 1_048_576)
    }

    func apply(to configuration: inout WorkerConfiguration) {
        configuration.retryPolicy = RetryPolicy(
            maxAttempts: maxAttempts,
            backoff: Backoff(initial: retryDelay, multiplier: 2, maximum: retryMaxDelay, jitter: retryJitter))
        configuration.taskTimeLimit = taskTimeLimit
        configuration.consumerTimeout = consumerTimeout == .zero ? nil : consumerTimeout
        configuration.transientRetry.maxRetries = transientRetries
        configuration.deduplicatesTasks = deduplicate
    }
}
