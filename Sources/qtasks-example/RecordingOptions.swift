import ArgumentParser
import CommandSupport
import Logging
import QTasks
import QTasksRabbitMQ

/// The worker's task events and heartbeats: a result store
/// (`--result-store`), the events exchange (`--publish-events`), both or
/// neither (then ``WorkerConfiguration/events`` stays nil and the worker
/// records nothing, as before these options existed).
struct RecordingOptions: ParsableArguments {
    @OptionGroup var store: ResultStoreOptions

    @Flag(help: "Publish task events and heartbeats to the qtasks.events topic exchange (read them with `qtasks events`).")
    var publishEvents = false

    @Option(
        help: ArgumentHelp(
            "Seconds between heartbeats, with a result store or --publish-events; a worker drops out of `qtasks workers` 3 intervals after its last one (default: 5).",
            valueName: "seconds"),
        transform: SecondsOption.parser("--heartbeat-interval must be seconds from 0.1 to 3600") { (0.1...3600).contains($0) })
    var heartbeatInterval: Duration = .seconds(5)

    @Option(
        name: .customLong("result-ttl"),
        help: ArgumentHelp("Seconds a task's record is kept after its latest event (default: 86400, a day).", valueName: "seconds"),
        transform: SecondsOption.parser("--result-ttl must be seconds from 1 to 31536000 (a year)") { (1...31_536_000).contains($0) })
    var resultTTL: Duration = .seconds(86_400)

    @Option(help: ArgumentHelp("The most finished records the store keeps; past it the oldest finished go first (default: 100000).", valueName: "n"))
    var resultMaxRecords: Int?

    func validate() throws {
        if let resultMaxRecords, resultMaxRecords < 1 { throw ValidationError("--result-max-records must be at least 1") }
    }

    /// What the worker records to, and closes after it stopped.
    struct Sinks {
        var recording: TaskEventRecording
        var store: (any ResultStore)?
        var publisher: RabbitMQEventPublisher?

        /// Closes the store and the events connection.
        func close() async {
            await store?.close()
            await publisher?.close()
        }
    }

    /// Opens the result store and connects the events publisher, as asked;
    /// nil when neither is.
    ///
    /// - Throws: `ExitCode(4)` when the store or the events exchange
    ///   cannot be reached (after logging why, password redacted),
    ///   `ExitCode(64)` for a URL that does not parse.
    func open(broker: RabbitMQBrokerConfiguration, logger: Logger) async throws -> Sinks? {
        var base = ResultStoreConfiguration()
        base.timeToLive = resultTTL
        if let resultMaxRecords { base.maxRecords = resultMaxRecords }
        let resultStore: (any ResultStore)?
        do {
            resultStore = try await store.open(base)
        } catch let error as ResultStoreError {
            logger.critical("cannot start: result store \(store.redactedURL): \(error.message)")
            throw error.code == .invalidURL ? ExitCode(64) : ExitCode(4)
        }
        var publisher: RabbitMQEventPublisher?
        if publishEvents {
            let events = RabbitMQEventPublisher(configuration: broker, logger: Logger(label: "qtasks.events"))
            do {
                try await events.connect()
            } catch {
                logger.critical("cannot start: \(events): \(error)")
                await resultStore?.close()
                await events.close()
                throw ExitCode(4)
            }
            publisher = events
        }
        var sinks: [any TaskEventSink] = []
        if let resultStore { sinks.append(resultStore) }
        if let publisher { sinks.append(publisher) }
        guard !sinks.isEmpty else { return nil }
        return Sinks(
            recording: TaskEventRecording(sinks: sinks, heartbeatInterval: heartbeatInterval),
            store: resultStore, publisher: publisher)
    }
}
