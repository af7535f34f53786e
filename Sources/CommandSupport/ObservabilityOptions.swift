import ArgumentParser
import Logging
import QTasksObservability

/// The logging and metrics options of the long-running commands
/// (`qtasks-example`, `qtasks-scheduler`): `--log-level`, `--log-format`,
/// `--metrics-port`, `--metrics-host`.
public struct ObservabilityOptions: ParsableArguments {
    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.")
    public var logLevel: String = "info"

    @Option(help: "Log format on standard error: text (human-readable) or json (one JSON object per line).")
    public var logFormat: String = "text"

    @Option(
        help: ArgumentHelp(
            "Serve Prometheus metrics on http://HOST:PORT/metrics (0: any free port, logged at start; default: no endpoint).",
            valueName: "port"))
    public var metricsPort: Int?

    @Option(help: ArgumentHelp("Address the metrics endpoint binds to (an IPv4 or IPv6 address).", valueName: "address"))
    public var metricsHost: String = "127.0.0.1"

    public init() {}

    public func validate() throws {
        guard Logger.Level(rawValue: logLevel) != nil else { throw ValidationError("unknown --log-level \(logLevel)") }
        guard LogFormat(rawValue: logFormat) != nil else { throw ValidationError("--log-format must be text or json") }
        if let metricsPort, !(0...65535).contains(metricsPort) {
            throw ValidationError("--metrics-port must be 0...65535")
        }
    }

    /// Bootstraps swift-log with the chosen level and format.
    public func bootstrapLogging(metadataProvider: Logger.MetadataProvider? = nil) {
        let format = LogFormat(rawValue: logFormat) ?? .text
        format.bootstrap(level: Logger.Level(rawValue: logLevel) ?? .info, metadataProvider: metadataProvider)
    }

    /// Starts the metrics endpoint when `--metrics-port` was given (before
    /// anything makes a metric); nil otherwise.
    /// - Throws: `ExitCode(4)` when it cannot listen, after logging why.
    public func startMetricsEndpoint(logger: Logger) async throws -> MetricsEndpoint.Running? {
        guard let metricsPort else { return nil }
        do {
            return try await MetricsEndpoint.start(host: metricsHost, port: UInt16(metricsPort), logger: logger)
        } catch {
            logger.critical("cannot start: metrics endpoint on \(metricsHost):\(metricsPort): \(error)")
            throw ExitCode(4)
        }
    }
}
