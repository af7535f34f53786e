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

    @Option(help: "Seconds before the first retry; each next one doubles.")
    var retryDelay: Double = 1

    @Option(help: "Longest delay between retries, in seconds.")
    var retryMaxDelay: Double = 300

    @Option(help: "Fraction 0...1 of each retry delay taken off at random.")
    var retryJitter: Double = 0.2

    @Option(help: "Longest a task may run, in seconds (default: no limit; tasks may set their own).")
    var taskTimeLimit: Double?

    func validate() throws {
        guard maxAttempts >= 1 else { throw ValidationError("--max-attempts must be at least 1") }
        // `contains` is false for NaN and infinity: a delay the broker cannot
        // hold is refused here, not discovered on the first retry.
        let seconds = 0...2_592_000.0
        guard seconds.contains(retryDelay), seconds.contains(retryMaxDelay) else {
            throw ValidationError("--retry-delay and --retry-max-delay must be seconds from 0 to 2592000 (30 days)")
        }
        guard (0...1).contains(retryJitter) else { throw ValidationError("--retry-jitter must be 0...1") }
        if let taskTimeLimit, !(taskTimeLimit > 0 && taskTimeLimit <= 2_592_000) {
            throw ValidationError("--task-time-limit must be seconds, more than 0 and at most 2592000 (30 days)")
        }
    }

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
            backoff: Backoff(
                initial: Seconds.duration(retryDelay), multiplier: 2, maximum: Seconds.duration(retryMaxDelay),
                jitter: retryJitter))
        configuration.taskTimeLimit = taskTimeLimit.map(Seconds.duration)
    }
}
