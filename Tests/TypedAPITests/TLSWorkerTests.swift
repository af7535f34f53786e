import Foundation
import Logging
import QTasks
import QTasksRabbitMQ
import ServiceLifecycle
import TestSupport
import Testing

/// The TLS listener deploy/test.sh starts (see AMQPTests' TLSConnectionTests
/// for the variables).
enum TLSEnvironment {
    static let environment = ProcessInfo.processInfo.environment
    static let url = environment["QTASKS_TEST_TLS_URL"] ?? ""
    static let directory = environment["QTASKS_TEST_TLS_DIR"] ?? ""
    static let nodePort = environment["QTASKS_TEST_TLS_NODE_PORT"].flatMap(Int.init) ?? 0
    static let enabled = !url.isEmpty && !directory.isEmpty && nodePort != 0

    /// The amqps URL verified against the test CA, with a connection name of
    /// the test's own (RabbitMQ shows it, and the reconnect test closes only
    /// the connections that carry it).
    static func url(connectionName: String) -> String {
        "\(url)?cacertfile=\(directory)/ca.pem&connection_name=\(connectionName)&heartbeat=5"
    }

    /// Closes from the broker's side the connections named `name`; returns
    /// how many.
    static func closeConnections(named name: String) async throws -> Int {
        try await PrivateRabbitMQ(port: nodePort).closeConnections(named: name, reason: "TLS worker reconnect test")
    }
}

/// A worker, its broker and a client in one process, all over TLS.
@Suite(
    .enabled(if: TLSEnvironment.enabled, "no TLS listener configured (QTASKS_TEST_TLS_URL); deploy/test.sh starts one"),
    .timeLimit(.minutes(3)))
struct TLSWorkerTests {
    @Test func aWorkerConsumesAndRepliesOverTLSAndReconnects() async throws {
        var logger = Logger(label: "qtasks.tls-tests")
        logger.logLevel = .warning
        let name = "tls-worker-\(UUID().uuidString.prefix(8).lowercased())"
        let queue = name
        let configuration = try RabbitMQBrokerConfiguration(url: TLSEnvironment.url(connectionName: name))
        #expect(configuration.connection.tls.isEnabled)
        #expect(configuration.redactedURL.hasPrefix("amqps://guest:***@"))
        let broker = RabbitMQBroker(configuration: configuration, logger: logger)
        var workerConfiguration = WorkerConfiguration(shutdownGracePeriod: .seconds(5))
        workerConfiguration.queues = [queue]
        workerConfiguration.logger = logger
        let worker = Worker(broker: broker, app: try makeApp(), configuration: workerConfiguration)
        let client = TaskClient(broker: broker, logger: logger)
        let group = ServiceGroup(services: [broker, worker, client], gracefulShutdownSignals: [], logger: logger)
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            do {
                #expect(try await client.send(Tasks.add, 2, 3, queue: queue).value(timeout: .seconds(30)) == 5)

                // The broker drops every connection of this broker object
                // (publisher and consumer); the next sends must go through
                // reconnected TLS connections. A send racing the loss may
                // fail: it is retried until the deadline, and the result
                // needs the worker's consumer back too.
                let closed = try await TLSEnvironment.closeConnections(named: name)
                #expect(closed >= 2, "expected the publisher and consumer connections, closed \(closed)")
                let deadline = ContinuousClock.now + .seconds(90)
                var sum: Int?
                var lastError: (any Error)?
                while sum == nil, ContinuousClock.now < deadline {
                    do {
                        sum = try await client.send(Tasks.add, 20, 22, queue: queue).value(timeout: .seconds(30))
                    } catch {
                        lastError = error
                    }
                }
                #expect(sum == 42, "no result after the reconnect: \(String(describing: lastError))")
            } catch {
                await group.triggerGracefulShutdown()
                throw error
            }
            await group.triggerGracefulShutdown()
            try await tasks.waitForAll()
        }
    }
}
