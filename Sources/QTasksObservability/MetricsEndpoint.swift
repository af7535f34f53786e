import FlyingFox
import FlyingSocks
import Foundation
import Logging
import Metrics
import Prometheus
import Synchronization

/// `GET /metrics` in the Prometheus text format (0.0.4), served by
/// FlyingFox from the registry that swift-metrics was bootstrapped with:
/// the HTTP endpoint behind `--metrics-port` (docs/operations.md,
/// "Monitoring", lists the metrics).
public enum MetricsEndpoint {
    /// The Prometheus text exposition format's content type.
    public static let contentType = "text/plain; version=0.0.4; charset=utf-8"

    /// A running endpoint.
    public struct Running: Sendable {
        /// The port it listens on (the one chosen when asked for port 0).
        public let port: UInt16
        /// `http://host:port/metrics`, an IPv6 host in brackets.
        public let url: String
        let task: Task<Void, Never>

        /// Stops serving.
        public func stop() { task.cancel() }
    }

    /// Bootstraps `MetricsSystem` with a Prometheus factory (task duration
    /// buckets from 5 ms to 5 min), starts the endpoint on `host:port`,
    /// and logs its URL (`metrics endpoint listening`, with `metrics_url`
    /// and `metrics_port`). Call once per process, before anything makes
    /// a metric.
    ///
    /// - Parameters:
    ///   - host: an IPv4 or IPv6 address to bind, e.g. `127.0.0.1`.
    ///   - port: 0 for any free port.
    /// - Throws: FlyingFox's socket errors when the address does not parse
    ///   or cannot be bound.
    public static func start(host: String, port: UInt16, logger: Logger) async throws -> Running {
        let registry = bootstrap()
        let (task, bound) = try await serve(host: host, port: port, registry: registry, logger: logger)
        let url = "http://\(host.contains(":") ? "[\(host)]" : host):\(bound)/metrics"
        logger.info("metrics endpoint listening", metadata: ["metrics_url": "\(url)", "metrics_port": "\(bound)"])
        return Running(port: bound, url: url, task: task)
    }

    /// Bootstraps `MetricsSystem` with a Prometheus factory; call once.
    private static func bootstrap() -> PrometheusCollectorRegistry {
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

    /// Binds host:port and starts serving; returns the serving task and
    /// the port it listens on.
    private static func serve(host: String, port: UInt16, registry: PrometheusCollectorRegistry, logger: Logger)
        async throws -> (Task<Void, Never>, UInt16)
    {
        let address: any SocketAddress
        do {
            if host.contains(":") {
                address = try sockaddr_in6.inet6(ip6: host, port: port)
            } else {
                address = try sockaddr_in.inet(ip4: host, port: port)
            }
        } catch {
            throw MetricsEndpointError("'\(host)' is not an IPv4 or IPv6 address (a host name such as localhost is not accepted)")
        }
        let server = HTTPServer(address: address, timeout: 15, logger: .disabled)
        await server.appendRoute("GET /metrics") { _ in
            var buffer: [UInt8] = []
            buffer.reserveCapacity(4096)
            registry.emit(into: &buffer)
            return HTTPResponse(
                statusCode: .ok, headers: [.contentType: contentType], body: Data(buffer))
        }
        // A bind failure ends `run()` at once: report it as the reason the
        // endpoint did not start, not as a timeout 10 s later.
        let failure = Mutex<(any Error)?>(nil)
        let started = Mutex(false)
        let task = Task {
            do {
                try await server.run()
            } catch is CancellationError {
            } catch {
                failure.withLock { $0 = error }
                if started.withLock({ $0 }) { logger.error("metrics endpoint stopped: \(error)") }
            }
        }
        let deadline = ContinuousClock.now + .seconds(10)
        while await !server.isListening {
            if let error = failure.withLock({ $0 }) { throw error }
            guard ContinuousClock.now < deadline else {
                task.cancel()
                throw MetricsEndpointError("not listening after 10 s")
            }
            try await Task.sleep(for: .milliseconds(10))
        }
        started.withLock { $0 = true }
        var bound = port
        switch await server.listeningAddress {
        case .ip4(_, let listening)?, .ip6(_, let listening)?: bound = listening
        default: break
        }
        return (task, bound)
    }
}

/// Why the metrics endpoint did not start, when FlyingFox gave no error.
struct MetricsEndpointError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
