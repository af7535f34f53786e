import ArgumentParser
import CommandSupport
import Foundation
import Logging
import QTasks
import QTasksRabbitMQ
import QTasksState
import QTasksStateStores
import QTasksW3CTracing
import ServiceLifecycle

/// The example worker: the tasks of ``ExampleTasks`` on a RabbitMQ broker.
@main
struct ExampleWorkerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "qtasks-example",
        abstract: "Runs a worker with the example tasks: add, echo, sleep, long_sleep, fail, word_count, mask_card, work, test_depends, step1, step2 (and always_fail, limited_sleep, give_up, which show retries, time limits and self-cancel).",
        discussion: """
            Consumes the given queues from RabbitMQ, runs each task and publishes its result to the \
            message's reply_to queue. SIGINT or SIGTERM stops consuming, lets running tasks finish (up \
            to --shutdown-grace seconds), acknowledges them and exits 0.

            A result over --max-result-bytes (default 8 MiB), or one the broker refuses as larger \
            than its max_message_size, is answered with an error result (ResultTooLargeError: \
            result of N bytes exceeds the limit of M bytes) and the task is dead-lettered; it does \
            not run again.

            The broker URL comes from --url, else QTASKS_URL, else \
            amqp://guest:guest@127.0.0.1:5672/%2F.

            step1 and step2 keep their State in the backend named by --state, else QTASKS_STATE_URL, \
            else the SQLite file .qtasks-state.db in the current directory (shared by the workers \
            started there; use redis://host:6379/0 for workers on several hosts). The backend is \
            opened by the first task that needs it and closed at shutdown; a malformed URL exits 64.

            With --result-store (or QTASKS_RESULT_STORE) the worker records each task's events \
            (received, started, succeeded, failed, retried, dead_lettered, cancelled) and its \
            heartbeats in that store, for `qtasks result`, `qtasks tasks` and `qtasks workers`; with \
            --publish-events it also publishes them to the qtasks.events exchange, for `qtasks events`. \
            Recording never delays an ack: events wait in a bounded buffer and are written in \
            batches. Without either the worker records nothing. Arguments are recorded (up to 4 KiB), \
            except those of mask_card, a task whose arguments are secret (TaskOptions(recordsArguments: \
            false)): its records say {"omitted": true}. A store or events exchange that cannot be \
            reached at start exits 4.
            """)

    @Option(help: "Broker URL, amqp[s]://user:pass@host:port/vhost exactly (RabbitMQ's URI format: percent-encode a space, '@', ':' or '/' inside a part; the vhost / is %2F); for a cluster, one URL per node separated by ';', tried in turn (default: $QTASKS_URL, else the local broker).")
    var url: String?

    @OptionGroup var urlFile: BrokerURLFileOption

    @OptionGroup(title: "TLS")
    var tls: TLSOptions

    @Option(
        name: .customLong("queue"),
        help: "A queue to consume; repeat for several (default: default). 1 to \(QueueNaming.longestTaskQueueName) bytes (room for its .dlq and .retry.<ms> queues within AMQP's 255), not starting with amq.")
    var queues: [String] = []

    @Option(help: "How many tasks run at once, 1...65535.")
    var concurrency: Int = 10

    @Option(help: "Most unacknowledged messages held per queue, 1...65535 (AMQP's limit; default: 4 x concurrency, at most 65535).")
    var prefetch: Int?

    @Option(
        help: "Seconds running tasks get to finish after SIGTERM/SIGINT (default: 30).",
        transform: SecondsOption.parser("--shutdown-grace must be seconds from 0 to 86400") { (0...86_400).contains($0) })
    var shutdownGrace: Duration = .seconds(30)

    @Option(help: "Largest accepted message body, in bytes, 1...536870912 (RabbitMQ's largest message, 512 MiB).")
    var maxMessageBytes: Int = 1_048_576

    @Option(
        help: ArgumentHelp(
            "Largest result the worker publishes, in bytes (8 MiB by default; 0: no limit of the worker's own).",
            discussion: "A larger result is not sent: the client gets an error result (ResultTooLargeError) and the task goes to the dead-letter queue, without running again. Keep it at or under the broker's max_message_size (RabbitMQ 4: 16 MiB, 3.x: 128 MiB), which RabbitMQ does not tell clients; a result the broker refuses as too large ends the same way."))
    var maxResultBytes: Int = 8_388_608

    @Option(
        help: ArgumentHelp(
            "State backend URL: sqlite:///path/state.db, redis://host:6379/0, memory:// (default: $QTASKS_STATE_URL, else sqlite://<cwd>/.qtasks-state.db).",
            valueName: "url"))
    var state: String?

    @OptionGroup var stateFile: StateURLFileOption

    @OptionGroup(title: "Retries, time limits, queue type")
    var reliability: ReliabilityOptions

    @OptionGroup(title: "Routing, per-queue concurrency, priorities")
    var routing: RoutingOptions

    @OptionGroup(title: "Task events and heartbeats: result store, events exchange")
    var recording: RecordingOptions

    @OptionGroup(title: "Logs and metrics")
    var observability: ObservabilityOptions

    @Flag(help: "Trace tasks with W3C trace context (also QTASKS_TRACING=1): log lines get trace_id and span_id, results carry traceparent.")
    var tracing = false

    func validate() throws {
        if reliability.deduplicate, try recording.store.resolvedURL() == nil {
            throw ValidationError("--deduplicate needs --result-store (the store that records which uuids ran)")
        }
        // Every numeric flag is checked against its range and refused with
        // the range named (exit 64); nothing given is clamped
        // (docs/operations.md, "Flags and their ranges").
        for queue in consumedQueues {
            do {
                try QueueNaming.validateTaskQueue(queue, what: "--queue")
            } catch let error as QueueNameError {
                throw ValidationError(error.message)
            }
        }
        guard (1...WorkerConfiguration.longestPrefetch).contains(concurrency) else {
            throw ValidationError(
                "--concurrency must be 1...\(WorkerConfiguration.longestPrefetch) (at most 65535 deliveries of a queue can be unacknowledged at once), not \(concurrency)")
        }
        try reliability.queueTypes.validate(maxPriority: routing.maxPriority)
        if routing.taskiqQueues {
            // Taskiq's declaration is quorum and dead-letters to its own
            // queue: a contradicting flag would be silently overridden.
            if reliability.queueTypes.queueType.map({ $0.lowercased() != "quorum" }) == true {
                throw ValidationError(
                    "--taskiq-queues declares quorum queues (as taskiq-aio-pika does), not --queue-type \(reliability.queueTypes.queueType ?? "")")
            }
            if consumedQueues.contains(routing.taskiqDeadLetterQueue) {
                throw ValidationError(
                    "--taskiq-dead-letter-queue '\(routing.taskiqDeadLetterQueue)' is also a --queue: a queue cannot be its own dead-letter queue")
            }
        }
        _ = try ExampleTracing.isEnabled(flag: tracing)
        if let prefetch, !(1...WorkerConfiguration.longestPrefetch).contains(prefetch) {
            throw ValidationError("--prefetch must be 1...\(WorkerConfiguration.longestPrefetch) (AMQP's limit), not \(prefetch)")
        }
        guard (1...Self.largestMessageBytes).contains(maxMessageBytes) else {
            throw ValidationError("--max-message-bytes must be 1...\(Self.largestMessageBytes) (RabbitMQ's largest message, 512 MiB), not \(maxMessageBytes)")
        }
        guard maxResultBytes >= 0 else { throw ValidationError("--max-result-bytes must be 0 (no limit) or more, not \(maxResultBytes)") }
        _ = try routing.parsedBindings(queues: consumedQueues)
        _ = try Self.brokerConfiguration(url: try brokerURL())
    }

    /// RabbitMQ's `max_message_size` cannot be set higher: 512 MiB.
    static let largestMessageBytes = 536_870_912

    /// The `--queue`s (default `default`), and with
    /// `--dramatiq-delay-queues` each one's Dramatiq delay queue
    /// `<queue>.DQ` after them.
    var consumedQueues: [String] {
        let named = queues.isEmpty ? ["default"] : queues
        guard routing.dramatiqDelayQueues else { return named }
        return named + named.filter { !$0.hasSuffix(".DQ") }.map { $0 + ".DQ" }.filter { !named.contains($0) }
    }

    /// `--url`, `--url-file`, `QTASKS_URL`, `QTASKS_URL_FILE`, else the
    /// local broker; with the TLS options applied.
    func brokerURL() throws -> String {
        try tls.applied(to: try SecretURL.broker(flag: url, file: urlFile) ?? "amqp://guest:guest@127.0.0.1:5672/%2F")
    }

    /// The broker URL parsed; a malformed one is a usage error (64), as in
    /// the qtasks CLI, refused before anything connects.
    static func brokerConfiguration(url: String) throws -> RabbitMQBrokerConfiguration {
        do {
            return try RabbitMQBrokerConfiguration(url: url)
        } catch {
            throw ValidationError("\(error)")
        }
    }

    func run() async throws {
        let tracing = try ExampleTracing.isEnabled(flag: tracing)
        observability.bootstrapLogging(metadataProvider: tracing ? W3CTraceLogging.metadataProvider : nil)
        let logger = Logger(label: "qtasks.example")
        let brokerURL = try brokerURL()
        if !routing.plainQueues.isEmpty {
            logger.warning(
                "--plain-queue is deprecated and has no effect: every task queue is declared plain now (docs/interop.md)",
                metadata: ["queues": "\(routing.plainQueues.joined(separator: ","))"])
        }

        let stateURL = StateStores.resolvedURL(
            try SecretURL.state(flag: state, file: stateFile))
        do {
            try StateStores.validate(url: stateURL)
        } catch {
            logger.critical("cannot start: \(error.message)")
            throw ExitCode(64)
        }
        let app = TaskApp(name: "example")
        try ExampleTasks.register(on: app, stateStore: .stateStore(url: stateURL))

        // Bootstrapped before the worker makes any metric.
        let metricsEndpoint = try await observability.startMetricsEndpoint(logger: logger)
        defer { metricsEndpoint?.stop() }

        let broker: RabbitMQBroker
        var brokerConfiguration: RabbitMQBrokerConfiguration
        do {
            brokerConfiguration = try RabbitMQBrokerConfiguration(url: brokerURL)
        } catch {
            // A malformed URL is a usage error (64), as in the qtasks CLI;
            // an unreachable or refusing broker is 4.
            logger.critical("cannot start: \(error)")
            throw ExitCode(64)
        }
        do {
            reliability.apply(to: &brokerConfiguration, maxMessageBytes: maxMessageBytes)
            try routing.apply(to: &brokerConfiguration, queues: consumedQueues)
            broker = RabbitMQBroker(configuration: brokerConfiguration, logger: Logger(label: "qtasks.rabbitmq"))
            try await broker.connect()
        } catch {
            logger.critical("cannot start: \(error)")
            throw ExitCode(4)
        }

        var configuration = WorkerConfiguration()
        configuration.queues = consumedQueues
        configuration.concurrency = concurrency
        configuration.prefetch = prefetch
        configuration.shutdownGracePeriod = shutdownGrace
        configuration.maxMessageBytes = maxMessageBytes
        configuration.maxResultBytes = maxResultBytes == 0 ? nil : maxResultBytes
        configuration.logger = Logger(label: "qtasks.worker")
        if tracing { configuration.tracer = ExampleTracing.makeTracer() }
        reliability.apply(to: &configuration)
        try routing.apply(to: &configuration)
        let sinks: RecordingOptions.Sinks?
        do {
            sinks = try await recording.open(broker: brokerConfiguration, logger: logger)
        } catch {
            await broker.close()
            throw error
        }
        configuration.events = sinks?.recording
        // Workflow joins and step ends go to the same store as the records
        // (docs/workflows.md): every worker of a fleet shares it.
        configuration.workflowStore = sinks?.store as? any WorkflowStore
        if let runLog = RunLogMiddleware() { configuration.middleware.append(runLog) }
        let worker = Worker(broker: broker, app: app, configuration: configuration)

        logger.info(
            "worker starting",
            metadata: [
                "broker": "\(broker.configuration.redactedURL)",
                "queues": "\(configuration.queues.joined(separator: ","))",
                "concurrency": "\(concurrency)", "tasks": "\(app.taskNames.joined(separator: ","))",
                "state": "\(StateStores.redactedURL(stateURL))",
                "result_store": "\(recording.store.redactedURL)",
                "events_exchange": "\(recording.publishEvents ? EventsExchange.name : "off")",
                "tracing": "\(tracing ? "w3c" : "off")",
            ])
        // The worker cannot set policies itself (AMQP has no command for
        // them, and it links no HTTP client): say what it relies on.
        logger.info(
            "task queues are declared plain; RabbitMQ dead-letters to <queue>.dlq and applies delivery limits through each queue's policy (qtasks queues policy apply)",
            metadata: [
                "policies": "\(configuration.queues.map { brokerConfiguration.taskQueuePolicy(for: $0) }.map { "\($0.name)=\($0.definitionJSON)" }.joined(separator: " "))"
            ])
        // The broker first: the group shuts services down in reverse
        // order, so the worker has settled its last task before the
        // broker's connections close.
        let group = ServiceGroup(
            configuration: ServiceGroupConfiguration(
                services: [.init(service: broker), .init(service: worker)],
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger))
        do {
            try await group.run()
        } catch {
            logger.error("worker stopped: \(error)")
            await sinks?.close()
            throw ExitCode(1)
        }
        // After the worker: its last events and offline heartbeat are out.
        await sinks?.close()
        logger.info("worker stopped")
    }
}
