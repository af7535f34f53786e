import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import QTasks
import ServiceLifecycle

/// The web dashboard: pages and a JSON API over the broker, the result
/// store and the State store (docs/dashboard.md).
///
/// A `Service`: while it runs it samples the result store once per
/// ``DashboardConfiguration/liveUpdateInterval`` for the charts and the
/// live updates. Serve it either on its own:
///
/// ```swift
/// let dashboard = Dashboard(configuration: DashboardConfiguration(broker: broker, resultStore: store))
/// let app = try dashboard.makeApplication(host: "127.0.0.1", port: 8089)
/// try await ServiceGroup(services: [dashboard, app], logger: logger).run()
/// ```
///
/// or mounted in a Hummingbird server of one's own (then add `dashboard`
/// to that server's services):
///
/// ```swift
/// dashboard.addRoutes(to: router, at: "/qtasks")
/// ```
public final class Dashboard: Service, Sendable {
    public let configuration: DashboardConfiguration
    let api: DashboardAPI
    let logger: Logger

    public init(configuration: DashboardConfiguration, logger: Logger = Logger(label: "qtasks.dashboard")) {
        self.configuration = configuration
        self.logger = logger
        self.api = DashboardAPI(configuration: configuration, logger: logger)
    }

    /// Samples the result store until graceful shutdown, then ends the
    /// live streams and closes the broker connection. The stores belong
    /// to the caller and stay open.
    public func run() async throws {
        if let store = configuration.resultStore {
            do {
                // The first sample sets each worker's baseline, which the
                // backfill counts up to.
                try await api.feed.sample(from: store)
                try await api.feed.backfill(from: store)
            } catch is CancellationError {
            } catch {
                logger.warning("cannot read the last hour from the result store; charts start empty", metadata: ["error": "\(error)"])
            }
        }
        await cancelWhenGracefulShutdown {
            var lastError: String?
            while !Task.isCancelled {
                if let store = self.configuration.resultStore {
                    do {
                        try await self.api.feed.sample(from: store)
                        if lastError != nil { self.logger.info("result store readable again") }
                        lastError = nil
                    } catch is CancellationError {
                        break
                    } catch {
                        let text = "\(error)"
                        if text != lastError {
                            self.logger.warning("cannot sample the result store", metadata: ["error": "\(text)"])
                        }
                        lastError = text
                        await self.api.feed.publishIdle()
                    }
                } else {
                    await self.api.feed.publishIdle()
                }
                try? await Task.sleep(for: self.configuration.liveUpdateInterval)
            }
        }
        await api.feed.finish()
        await api.broker?.close()
    }

    /// A Hummingbird application serving the dashboard at `/`.
    ///
    /// - Parameters:
    ///   - host: the address to bind. Without credentials
    ///     (``DashboardConfiguration/authentication``) only a loopback
    ///     address is accepted: `127.0.0.1`, `::1` or `localhost`.
    ///   - port: 0 for any free port (`onServerRunning` tells which).
    /// - Throws: ``DashboardError`` for a non-loopback host without
    ///   credentials.
    public func makeApplication(
        host: String = "127.0.0.1", port: Int = 8089,
        onServerRunning: @escaping @Sendable (_ port: Int) async -> Void = { _ in }
    ) throws -> some ApplicationProtocol {
        guard configuration.authentication.isEnabled || Self.isLoopback(host) else {
            throw DashboardError(
                "refusing to serve on \(host) without credentials: bind to 127.0.0.1, or give credentials (--auth-file, QTASKS_DASHBOARD_AUTH, or a bearer token)")
        }
        let router = Router(context: BasicRequestContext.self)
        addRoutes(to: router)
        return Application(
            router: router,
            configuration: ApplicationConfiguration(address: .hostname(host, port: port), serverName: nil),
            onServerRunning: { channel in await onServerRunning(channel.localAddress?.port ?? port) },
            logger: logger)
    }

    /// Whether `host` names a loopback address.
    public static func isLoopback(_ host: String) -> Bool {
        let host = host.trimmingCharacters(in: CharacterSet(charactersIn: "[]"))
        if host == "localhost" || host == "::1" { return true }
        let parts = host.split(separator: ".", omittingEmptySubsequences: false)
        return parts.count == 4 && parts[0] == "127" && parts.allSatisfy { UInt8($0) != nil }
    }

    /// Adds the pages, the assets and the JSON API under `basePath` (`""`
    /// or a path such as `/qtasks`), behind the configured credentials.
    public func addRoutes<Context: RequestContext>(to router: some RouterMethods<Context>, at basePath: String = "") {
        var base = basePath
        while base.hasSuffix("/") { base.removeLast() }
        if !base.isEmpty && !base.hasPrefix("/") { base = "/" + base }
        let group = router.group(RouterPath(base.isEmpty ? "/" : base))
        group.add(
            middleware: AccessControl<Context>(
                authentication: configuration.authentication, allowedHosts: configuration.allowedHosts))
        let routes = DashboardRoutes(api: api, configuration: configuration, base: base)
        routes.add(to: group)
    }
}
