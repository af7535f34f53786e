import ArgumentParser
import CommandSupport
import Foundation
import Hummingbird
import Logging
import QTasks
import QTasksDashboard
import QTasksRabbitMQ
import QTasksState
import QTasksStateStores
import RabbitMQManagement
import ServiceLifecycle

/// `qtasks dashboard`: the web dashboard (docs/dashboard.md).
struct DashboardCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dashboard",
        abstract: "Serve the web dashboard: queues, workers, tasks, dead letters, schedules and State.",
        discussion: """
            Reads the broker (--url), the result store the workers write (--result-store), the State \
            store of the scheduler and tasks (--state, optional) and RabbitMQ's management API \
            (--management-url, optional: unacked counts and rates). Prints the address it serves on, \
            then serves until SIGINT or SIGTERM.

            Without credentials the dashboard binds to a loopback address only; any other --host \
            needs --auth-file (user:password), $QTASKS_DASHBOARD_AUTH, or a bearer token \
            (--token-file, $QTASKS_DASHBOARD_TOKEN). --auth user:password also works but shows the \
            password in the process list.

            Exit status: 0 stopped by a signal; 4 the result store or State store could not be \
            opened, or the port is taken; 64 bad usage (including a non-loopback --host without \
            credentials).
            """)

    @OptionGroup var broker: BrokerOptions
    @OptionGroup(title: "Result store") var resultStore: ResultStoreOptions

    @Option(name: .customLong("state"), help: ArgumentHelp("State store URL for the schedules and State pages (default: $QTASKS_STATE_URL, else none).", valueName: "url"))
    var stateURL: String?
    @OptionGroup var stateFile: StateURLFileOption

    @Option(help: "RabbitMQ management API base URL with credentials, http://user:pass@host:15672, for unacked counts and rates.")
    var managementURL: String?

    @Option(name: .customLong("queue"), help: "A task queue to show even when no worker consumes it (repeatable; default: default).")
    var queues: [String] = []

    @Option(help: "Address to bind: 127.0.0.1 by default; any non-loopback address needs credentials.")
    var host = "127.0.0.1"

    @Option(name: .customLong("allowed-host"), help: ArgumentHelp("A host name requests may use (repeatable; default without credentials: loopback names only, against DNS rebinding; with credentials: any).", valueName: "name"))
    var allowedHosts: [String] = []

    @Option(help: "Port to serve on (0: any free port).")
    var port = 8089

    @Option(help: ArgumentHelp("user:password for HTTP Basic (visible in the process list: prefer --auth-file).", valueName: "user:password"))
    var auth: String?
    @Option(help: ArgumentHelp("File holding user:password (or $QTASKS_DASHBOARD_AUTH, $QTASKS_DASHBOARD_AUTH_FILE).", valueName: "path"))
    var authFile: String?
    @Option(help: ArgumentHelp("File holding a bearer token (or $QTASKS_DASHBOARD_TOKEN, $QTASKS_DASHBOARD_TOKEN_FILE).", valueName: "path"))
    var tokenFile: String?

    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: String = "info"

    func validate() throws {
        guard (0...65535).contains(port) else { throw ValidationError("--port must be 0 to 65535") }
        guard Logger.Level(rawValue: logLevel) != nil else { throw ValidationError("unknown --log-level \(logLevel)") }
        if let managementURL {
            do { _ = try RabbitMQManagementAPI(url: managementURL) } catch {
                throw ValidationError("--management-url must be http(s)://user:pass@host:port")
            }
        }
        for queue in queues where queue.isEmpty || queue.utf8.count > 255 {
            throw ValidationError("a queue name must be 1 to 255 bytes")
        }
        let authentication = try resolvedAuthentication()
        if !authentication.isEnabled && !Dashboard.isLoopback(host) {
            throw ValidationError(
                "--host \(host) is not a loopback address: give credentials (--auth-file, $QTASKS_DASHBOARD_AUTH or --token-file) or bind to 127.0.0.1")
        }
    }

    /// Basic credentials and/or a bearer token, from flags, files or the
    /// environment.
    func resolvedAuthentication() throws -> DashboardAuthentication {
        let basic = try SecretURL.resolve(flag: auth, file: authFile, flagName: "--auth", variable: "QTASKS_DASHBOARD_AUTH")
        let token = try SecretURL.resolve(flag: nil, file: tokenFile, flagName: "--token", variable: "QTASKS_DASHBOARD_TOKEN")
        let parsed: DashboardAuthentication?
        do {
            parsed = try basic.map { try DashboardAuthentication(parsingUserPassword: $0) }
        } catch {
            throw ValidationError("--auth: \(error)")
        }
        let authentication = parsed ?? .none
        return token.map { authentication.acceptingBearer(token: $0) } ?? authentication
    }

    func run() async throws {
        let level = Logger.Level(rawValue: logLevel) ?? .info
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "qtasks.dashboard")
        let brokerConfiguration: RabbitMQBrokerConfiguration
        do {
            brokerConfiguration = try RabbitMQBrokerConfiguration(url: broker.resolvedURL)
        } catch {
            printError("qtasks: \(error)")
            throw ExitStatus.usage
        }
        let store: (any ResultStore)?
        do {
            store = try await resultStore.open()
        } catch {
            printError("qtasks: cannot open the result store \(resultStore.redactedURL): \(error)")
            throw ExitStatus.brokerFailure
        }
        var state: (any StateStore)?
        if let url = try SecretURL.state(flag: stateURL, file: stateFile) {
            do {
                state = try await StateStores.open(url: url)
            } catch {
                await store?.close()
                printError("qtasks: cannot open the State store \(StateStores.redactedURL(url)): \(error)")
                throw ExitStatus.brokerFailure
            }
        }
        let configuration = DashboardConfiguration(
            broker: brokerConfiguration, resultStore: store, stateStore: state,
            managementAPI: try managementURL.map { try RabbitMQManagementAPI(url: $0) },
            queues: queues.isEmpty ? ["default"] : queues, authentication: try resolvedAuthentication(),
            allowedHosts: allowedHosts.isEmpty ? nil : allowedHosts)
        let dashboard = Dashboard(configuration: configuration, logger: logger)
        let host = host
        let app = try dashboard.makeApplication(host: host, port: port) { port in
            let shown = host.contains(":") ? "[\(host)]" : host
            let note = host == "0.0.0.0" || host == "::" ? " (every address of this host)" : ""
            print("qtasks dashboard: http://\(shown):\(port)/\(note)")
            fflush(nil)
        }
        logger.info(
            "dashboard starting",
            metadata: [
                "broker": "\(brokerConfiguration.redactedURL)", "result_store": "\(resultStore.redactedURL)",
                "authentication": "\(configuration.authentication)",
            ])
        let group = ServiceGroup(
            configuration: ServiceGroupConfiguration(
                // Stopped in reverse order: the dashboard first, which ends
                // the live streams, then the server.
                services: [.init(service: app), .init(service: dashboard)], gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger))
        do {
            try await group.run()
        } catch {
            await store?.close()
            await state?.close()
            printError("qtasks: dashboard: \(error)")
            throw ExitStatus.brokerFailure
        }
        await store?.close()
        await state?.close()
    }
}
