import ArgumentParser
import CommandSupport
import Foundation
import Logging
import QTasks
import QTasksRabbitMQ
import QTasksScheduler
import QTasksState
import QTasksStateStores
import ServiceLifecycle

/// `qtasks-scheduler`: submits periodic tasks until SIGTERM/SIGINT
/// (docs/scheduling.md).
@main
struct SchedulerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "qtasks-scheduler",
        abstract: "Submit tasks on interval and cron schedules, each tick exactly once across scheduler processes.",
        discussion: """
            Run one or more copies (for availability) with the same schedules and the same --state \
            backend: each tick is claimed atomically in that backend, and only the process that \
            claims it sends the task. Use an SQLite file for processes on one host, Redis across \
            hosts; memory:// only protects a single process.

            --every SECONDS:TASK[:QUEUE[:ARGS]] ticks at the multiples of SECONDS since the Unix \
            epoch. --cron 'EXPR:TASK[:QUEUE[:ARGS]]' takes a 5-field cron expression (minute hour \
            day month weekday; numbers, *, ranges a-b, lists a,b, steps */n; UTC). QUEUE defaults \
            to default, ARGS is a JSON array of positional arguments (default []). Each task sent \
            gets a uuid derived from its schedule and tick, printed on stdout as \
            `submitted TICK UUID TASK QUEUE`.

            With --result-store (or QTASKS_RESULT_STORE) each task sent is also recorded there \
            (a `sent` event: status new), so `qtasks result UUID` finds it before a worker took it; \
            a failure to record is logged, never stops the schedule.

            Ticks that pass while no scheduler runs are not sent afterwards. Exits 0 on SIGTERM or \
            SIGINT, or once --until is reached; 64 on bad arguments, 4 when the broker, the \
            State backend or the result store cannot be reached.
            """
    )

    @Option(help: "Broker URL, amqp[s]://user:pass@host:port/vhost exactly (RabbitMQ's URI format: percent-encode a space, '@', ':' or '/' inside a part; the vhost / is %2F); for a cluster, one URL per node separated by ';', tried in turn (default: $QTASKS_URL, else the local broker).")
    var url: String?

    @OptionGroup var urlFile: BrokerURLFileOption

    @OptionGroup(title: "TLS")
    var tls: TLSOptions

    @Option(
        help: ArgumentHelp(
            "State backend URL shared by all schedulers: sqlite:///path/state.db, redis://host:6379/0 (default: $QTASKS_STATE_URL, else sqlite://<cwd>/.qtasks-state.db).",
            valueName: "url"))
    var state: String?

    @OptionGroup var stateFile: StateURLFileOption

    @Option(name: .customLong("every"), help: ArgumentHelp("An interval schedule; repeat for several.", valueName: "seconds:task[:queue[:args]]"))
    var everies: [String] = []

    @Option(name: .customLong("cron"), help: ArgumentHelp("A cron schedule (UTC); repeat for several.", valueName: "expr:task[:queue[:args]]"))
    var crons: [String] = []

    @Option(help: "Skip ticks before this Unix time (seconds).")
    var from: Int64?

    @Option(help: "Send only ticks before this Unix time (seconds), then exit 0.")
    var until: Int64?

    @Option(name: .customLong("scheduler-id"), help: ArgumentHelp("Who this process is in the schedules' last_submitted_by, in State (default: host:pid).", valueName: "id"))
    var schedulerID: String?

    @OptionGroup(title: "Result store (a record of each task sent)")
    var results: ResultStoreOptions

    @OptionGroup(title: "How task queues are declared if they do not exist yet (as the workers declare them)")
    var queueTypes: QueueTypeOptions

    @OptionGroup(title: "Logs and metrics")
    var observability: ObservabilityOptions

    func validate() throws {
        guard !everies.isEmpty || !crons.isEmpty else { throw ValidationError("give at least one --every or --cron") }
        _ = try entries()
        if let from, let until, until <= from {
            throw ValidationError("--until (\(until)) must be after --from (\(from))")
        }
        // A malformed broker URL is a usage error (64) before anything
        // connects; the message never shows the password.
        do {
            _ = try RabbitMQBrokerConfiguration(url: try brokerURL())
        } catch let error as ValidationError {
            throw error
        } catch {
            throw ValidationError("\(error)")
        }
    }

    /// `--url`, `--url-file`, `QTASKS_URL`, `QTASKS_URL_FILE`, else the
    /// local broker; with the TLS options applied.
    func brokerURL() throws -> String {
        try tls.applied(to: try SecretURL.broker(flag: url, file: urlFile) ?? "amqp://guest:guest@127.0.0.1:5672/%2F")
    }

    /// Parses `SCHEDULE:TASK[:QUEUE[:ARGS]]`.
    static func entry(_ text: String, option: String, schedule: (String) throws -> Schedule) throws -> ScheduleEntry {
        let parts = text.split(separator: ":", maxSplits: 3, omittingEmptySubsequences: false).map(String.init)
        guard parts.count >= 2, !parts[1].isEmpty else {
            throw ValidationError("\(option) '\(text)': expected SCHEDULE:TASK[:QUEUE[:ARGS]]")
        }
        let queue = parts.count >= 3 && !parts[2].isEmpty ? parts[2] : "default"
        do {
            try QueueNaming.validateTaskQueue(queue, what: "\(option) '\(text)': QUEUE")
        } catch let error as QueueNameError {
            throw ValidationError(error.message)
        }
        var args: [JSONValue] = []
        if parts.count == 4 {
            guard let value = try? JSONDecoder().decode(JSONValue.self, from: Data(parts[3].utf8)),
                  let array = value.arrayValue else {
                throw ValidationError("\(option) '\(text)': ARGS must be a JSON array")
            }
            args = array
        }
        return ScheduleEntry(taskName: parts[1], args: args, queue: queue, schedule: try schedule(parts[0]))
    }

    func entries() throws -> [ScheduleEntry] {
        var result: [ScheduleEntry] = []
        for text in everies {
            result.append(try Self.entry(text, option: "--every") { seconds in
                guard let value = Int64(seconds), value >= 1 else {
                    throw ValidationError("--every '\(text)': SECONDS must be a whole number >= 1")
                }
                return .every(.seconds(value))
            })
        }
        for text in crons {
            result.append(try Self.entry(text, option: "--cron") { expression in
                do { return try Schedule.cron(expression) } catch { throw ValidationError("--cron: \(error)") }
            })
        }
        let names = result.map(\.name)
        guard Set(names).count == names.count else { throw ValidationError("the same schedule is given twice") }
        return result
    }

    func run() async throws {
        observability.bootstrapLogging()
        let logger = Logger(label: "qtasks.scheduler")
        let metricsEndpoint = try await observability.startMetricsEndpoint(logger: logger)
        defer { metricsEndpoint?.stop() }
        let entries = try entries()
        let brokerURL = try brokerURL()
        let stateURL = StateStores.resolvedURL(
            try SecretURL.state(flag: state, file: stateFile))
        var brokerConfiguration: RabbitMQBrokerConfiguration
        do {
            try StateStores.validate(url: stateURL)
            brokerConfiguration = try RabbitMQBrokerConfiguration(url: brokerURL)
        } catch {
            logger.critical("cannot start: \(error)")
            throw ExitCode(64)
        }
        queueTypes.apply(to: &brokerConfiguration)
        let broker = RabbitMQBroker(configuration: brokerConfiguration, logger: Logger(label: "qtasks.rabbitmq"))
        let store: any StateStore
        do {
            try await broker.connect()
            store = try await StateStores.open(url: stateURL)
        } catch {
            logger.critical("cannot start: \(error)")
            await broker.close()
            throw ExitCode(4)
        }
        let resultStore: (any ResultStore)?
        do {
            resultStore = try await results.open()
        } catch {
            logger.critical("cannot start: result store \(results.redactedURL): \(error)")
            await store.close()
            await broker.close()
            throw ExitCode(4)
        }
        let sentEvents = resultStore.map { SentEventWriter(store: $0, logger: logger) }
        let writing = Task { await sentEvents?.run() }
        let producer = SentEvents.producerID("qtasks-scheduler")
        let scheduler = Scheduler(
            entries: entries, broker: broker, store: store, from: from, until: until,
            logger: logger, schedulerID: schedulerID
        ) { entry, tick, uuid in
            // Unbuffered: one write per line, visible at once to whoever reads.
            FileHandle.standardOutput.write(Data("submitted \(tick) \(uuid) \(entry.taskName) \(entry.queue)\n".utf8))
            sentEvents?.submit(
                SentEvents.event(
                    uuid: uuid, taskName: entry.taskName, queue: entry.queue, priority: nil, producer: producer,
                    createdAt: Date()))
        }
        logger.info(
            "scheduler starting",
            metadata: [
                "broker": "\(broker.configuration.redactedURL)",
                "state": "\(StateStores.redactedURL(stateURL))",
                "result_store": "\(results.redactedURL)",
                "schedules": "\(entries.map(\.name).joined(separator: ", "))",
            ])
        let group = ServiceGroup(
            configuration: ServiceGroupConfiguration(
                services: [.init(service: scheduler, successTerminationBehavior: .gracefullyShutdownGroup)],
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger))
        var failed = false
        do {
            try await group.run()
        } catch {
            logger.error("scheduler stopped: \(error)")
            failed = true
        }
        sentEvents?.finish()
        await writing.value
        await resultStore?.close()
        await store.close()
        await broker.close()
        if failed { throw ExitCode(1) }
        logger.info("scheduler stopped")
    }
}
