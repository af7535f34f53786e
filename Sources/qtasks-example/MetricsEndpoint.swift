import FlyingFox
import FlyingSocks
import Foundation
import Logging
import Metrics
import Prometheus

/// `GET /metrics` in the Prometheus text format (0.0.4), served by
/// FlyingFox from the registry that swift-metrics was bootstrapped with.
enum MetricsEndpoint {
    static let contentType = "text/plain; version=0.0.4; charset=utf-8"

    /// Bootstraps `MetricsSystem` with a Prometheus factory; call once.
    static func bootstrap() -> PrometheusCollectorRegistry {
        let registry = PrometheusCollectorRegistry()
        var factory = PrometheusMetricsFactory(registry: registry)
        // Task durations: 5 ms to 5 minutes.
        factory.defaultDurationHistogramBuckets = [
            .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100),
            .milliseconds(250), .milliseconds(500), .seconds(1), .milliseconds(2500), .seconds(5),
            .seconds(10), .seconds(30), .seconds(60), .seconds(300),
        ]
        MetricsSystem.bootstrap(factory)
        return registry
    }

    /// Binds host:port (port 0: any free port) and starts serving; returns
    /// the server and the port it listens on.
    static func start(host: String, port: UInt16, registry: PrometheusCollectorRegistry, logger: Logger) async throws
        -> (server: HTTPServer, task: Task<Void, Never>, port: UInt16)
    {
        let address: any SocketAddress
        if host.contains(":") {
            address = try sockaddr_in6.inet6(ip6: host, port: port)
        } else {
            address = try sockaddr_in.inet(ip4: host, port: port)
        }
        let server = HTTPServer(address: address, timeout: 15, logger: .disabled)
        await server.appendRoute("GET /metrics") { _ in
            var buffer: [UInt8] = []
            buffer.reserveCapacity(4096)
            registry.emit(into: &buffer)
            return HTTPResponse(
                statusCode: .ok, headers: [.contentType: contentType], body: Data(buffer))
        }
        let task = Task {
            do {
                try await server.run()
            } catch is CancellationError {
            } catch {
                logger.error("metrics endpoint stopped: \(error)")
            }
        }
        try await server.waitUntilListening(timeout: 10)
        var bound = port
        switch await server.listeningAddress {
        case .ip4(_, let listening)?, .ip6(_, let listening)?: bound = listening
        default: break
        }
        return (server, task, bound)
    }
}
