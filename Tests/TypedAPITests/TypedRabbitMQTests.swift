import AMQP
import Foundation
import Logging
import QTasks
import QTasksRabbitMQ
import ServiceLifecycle
import TestSupport
import Testing

/// Where a RabbitMQ answers for these tests (deploy/test.sh starts one).
enum Broker {
    static let url = ProcessInfo.processInfo.environment["QTASKS_URL"] ?? "amqp://guest:guest@127.0.0.1:5672/%2F"

    /// True when a broker answers, or when one is required
    /// (`QTASKS_REQUIRE_BROKER=1`, set by deploy/test.sh): then a missing
    /// broker fails the run instead of skipping it.
    static let enabled: Bool = {
        if ProcessInfo.processInfo.environment["QTASKS_REQUIRE_BROKER"] == "1" { return true }
        guard let components = URLComponents(string: url.components(separatedBy: ";")[0]) else { return false }
        return TCPPort.isOpen(host: components.host ?? "127.0.0.1", port: components.port ?? 5672)
    }()
}

/// The typed API against a real RabbitMQ: the broker, a worker and a
/// client as services of one `ServiceGroup`, as the README shows them.
@Suite(.enabled(if: Broker.enabled, "no RabbitMQ reachable at QTASKS_URL; deploy/test.sh starts one"),
       .timeLimit(.minutes(2)))
struct TypedRabbitMQTests {
    /// Runs `body` with a client while a worker serves `queue`, all in one
    /// service group that shuts down gracefully afterwards.
    private func withServices(
        queue: String, app: TaskApp, _ body: @Sendable (TaskClient) async throws -> Void
    ) async throws {
        var logger = Logger(label: "qtasks.typed-tests")
        logger.logLevel = .warning
        let broker = try RabbitMQBroker(url: Broker.url, logger: logger)
        var configuration = WorkerConfiguration(shutdownGracePeriod: .seconds(5))
        configuration.queues = [queue]
        configuration.logger = logger
        let worker = Worker(broker: broker, app: app, configuration: configuration)
        let client = TaskClient(broker: broker, logger: logger)
        let group = ServiceGroup(services: [broker, worker, client], gracefulShutdownSignals: [], logger: logger)
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            do {
                try await body(client)
            } catch {
                await group.triggerGracefulShutdown()
                throw error
            }
            await group.triggerGracefulShutdown()
            try await tasks.waitForAll()
        }
        // The group closed the client and the broker: nothing more goes.
        await #expect(throws: TaskClientError.self) { _ = try await client.send(Tasks.ping, queue: queue) }
    }

    private func uniqueQueue() -> String { "typed-\(UUID().uuidString.prefix(8).lowercased())" }

    @Test func aTypedSendGivesItsTypedResultAndATypedFailure() async throws {
        let queue = uniqueQueue()
        try await withServices(queue: queue, app: try makeApp()) { client in
            let sum = try await client.send(Tasks.add, 2, 3, queue: queue).value(timeout: .seconds(20))
            #expect(sum == 5)
            let receipt = try await client.send(Tasks.order, "apple", 2, queue: queue).value(timeout: .seconds(20))
            #expect(receipt == Receipt(sku: "apple", quantity: 2, total: 5))

            let handle = try await client.send(Tasks.order, "none", 1, queue: queue)
            let error = await #expect(throws: TaskFailedError.self) {
                _ = try await handle.value(timeout: .seconds(20))
            }
            #expect(error?.code == .failed)
            #expect(error?.errorType == "OutOfStock")
            #expect(error?.message == "none is out of stock")
            #expect(error?.uuid == handle.uuid)
        }
    }

    @Test func aBatchOfAThousandIsConfirmedAndRuns() async throws {
        let queue = uniqueQueue()
        try await withServices(queue: queue, app: try makeApp()) { client in
            let handles = try await client.send(Tasks.add, batch: (0..<1000).map { ($0, 1) }, queue: queue)
            #expect(Set(handles.map(\.uuid)).count == 1000)
            var sums: [Int] = []
            for handle in handles {
                sums.append(try await handle.value(timeout: .seconds(60)))
            }
            #expect(sums == Array(1...1000))
        }
    }

    /// The connection threads (`amqp-<id>`) of this process, by thread id.
    private func connectionThreads() -> Set<String> {
        let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/task")) ?? []
        return Set(tasks.filter { tid in
            let name = (try? String(contentsOfFile: "/proc/self/task/\(tid)/comm", encoding: .utf8)) ?? ""
            return name.hasPrefix("amqp-")
        })
    }

    /// Brokers and clients dropped without close(), after sends that made
    /// reply queues: their connections' threads (and with them their
    /// sockets) go away by themselves. Counted by the threads that appeared
    /// while they were made (deploy/test.sh runs tests one at a time).
    @Test func droppedBrokersAndClientsReleaseTheirConnections() async throws {
        let queue = uniqueQueue()
        let before = connectionThreads()
        var clients: [TaskClient] = []
        for _ in 0..<4 {
            let client = TaskClient(broker: try RabbitMQBroker(url: Broker.url))
            _ = try await client.send(Tasks.add, 1, 2, queue: queue)
            try await client.sendWithoutReply(Tasks.add, 3, 4, queue: queue)
            clients.append(client)
        }
        let made = connectionThreads().subtracting(before)
        #expect(made.count >= 8, "a publisher and a consumer connection per broker: \(made)")
        // The last references go: each client holds its broker.
        clients.removeAll()
        let deadline = ContinuousClock.now + .seconds(30)
        var left = made
        while !left.isEmpty, ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(50))
            left = made.intersection(connectionThreads())
        }
        #expect(left.isEmpty, "threads of dropped connections still running: \(left)")
        try await AMQPConnection.withConnection(try AMQPConfiguration(url: Broker.url)) { connection in
            try await connection.withChannel { channel in
                try await channel.deleteQueue(queue)
                try await channel.deleteQueue(queue + ".dlq")
            }
        }
    }

    @Test func aClosedBrokerStaysClosed() async throws {
        let broker = try RabbitMQBroker(url: Broker.url)
        try await broker.connect()
        await broker.close()
        let error = await #expect(throws: BrokerError.self) {
            try await TaskClient.withClient(broker: broker) { client in
                _ = try await client.sendWithoutReply(Tasks.ping, queue: uniqueQueue())
            }
        }
        #expect(error?.code == .closed)
        await #expect(throws: BrokerError.self) { try await broker.connect() }
    }

    @Test func anEmptyQueueNameIsRefusedBeforeAnythingIsDeclared() async throws {
        try await RabbitMQBroker.withBroker(url: Broker.url) { broker in
            try await TaskClient.withClient(broker: broker) { client in
                let error = await #expect(throws: TaskClientError.self) {
                    _ = try await client.send(Tasks.add, 1, 2, queue: "")
                }
                #expect(error?.code == .invalidQueue)
                await #expect(throws: TaskClientError.self) {
                    _ = try await client.send(Tasks.add, batch: [(1, 2)], queue: "")
                }
            }
            let refused = await #expect(throws: BrokerError.self) { try await broker.declareTaskQueue("") }
            #expect(refused?.code == .refused)
        }
    }

    @Test func aScopedBrokerAndClientCloseOnEveryExit() async throws {
        struct Expected: Error {}
        let queue = uniqueQueue()
        var kept: TaskClient?
        await #expect(throws: Expected.self) {
            try await RabbitMQBroker.withBroker(url: Broker.url) { broker in
                try await TaskClient.withClient(broker: broker) { client in
                    kept = client
                    _ = try await client.sendWithoutReply(Tasks.ping, queue: queue)
                    throw Expected()
                }
            }
        }
        let error = await #expect(throws: TaskClientError.self) {
            _ = try await kept?.send(Tasks.ping, queue: queue)
        }
        #expect(error?.code == .closed)
        // A wrong password fails the scope before its body runs.
        let refused = Broker.url.replacingOccurrences(of: "guest:guest@", with: "guest:wrong@")
        await #expect(throws: BrokerError.self) {
            try await RabbitMQBroker.withBroker(url: refused) { _ in Issue.record("the body ran") }
        }
    }
}
