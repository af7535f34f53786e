import Foundation
import Logging
import QTasks
import QTasksRabbitMQ
import QTasksResultStores
import ServiceLifecycle
import Synchronization
import TestSupport
import Testing

/// Where a Redis answers for these tests (deploy/test.sh starts one).
enum WorkflowRedis {
    static let url = ProcessInfo.processInfo.environment["QTASKS_REDIS_URL"] ?? "redis://127.0.0.1:6379/0"
    static let enabled: Bool = {
        if ProcessInfo.processInfo.environment["QTASKS_REQUIRE_BROKER"] == "1" { return true }
        guard let components = URLComponents(string: url) else { return false }
        return TCPPort.isOpen(host: components.host ?? "127.0.0.1", port: components.port ?? 6379)
    }()
}

/// Workflows on a real RabbitMQ with a real Redis workflow store: the
/// shapes at size (a chain of 3, a group of 100, a chord of 1,000, a map
/// of 10,000 with at most 50 at once) and each failure policy.
@Suite(.enabled(if: Broker.enabled && WorkflowRedis.enabled, "no RabbitMQ at QTASKS_URL or no Redis at QTASKS_REDIS_URL; deploy/test.sh starts both"),
       .timeLimit(.minutes(5)))
struct WorkflowRabbitMQTests {
    enum Flow {
        static let add = TaskDefinition("wfr.add", arguments: Int.self, Int.self, returning: Int.self)
        static let mul = TaskDefinition("wfr.mul", arguments: Int.self, Int.self, returning: Int.self)
        static let collect = TaskDefinition("wfr.collect", arguments: [Int].self, returning: [Int].self)
        static let square = TaskDefinition("wfr.square", arguments: Int.self, returning: Int.self)
        /// Fails for 13.
        static let unlucky = TaskDefinition("wfr.unlucky", arguments: Int.self, returning: Int.self)
        static let sum = TaskDefinition("wfr.sum", arguments: [Int].self, returning: Int.self)
        static let tally = TaskDefinition("wfr.tally", arguments: [WorkflowMemberResult<Int>].self, returning: [String].self)
    }

    struct Unlucky: Error, CustomStringConvertible {
        var description: String { "13 is unlucky" }
    }

    /// Calls per task, and the most `wfr.square` calls running at once.
    final class Probe: Sendable {
        private let state = Mutex((calls: [String: Int](), running: 0, peak: 0))
        func called(_ name: String) { state.withLock { $0.calls[name, default: 0] += 1 } }
        func calls(_ name: String) -> Int { state.withLock { $0.calls[name, default: 0] } }
        func enter() { state.withLock { $0.running += 1; $0.peak = max($0.peak, $0.running) } }
        func leave() { state.withLock { $0.running -= 1 } }
        var peak: Int { state.withLock { $0.peak } }
    }

    func makeApp(_ probe: Probe) throws -> TaskApp {
        let app = TaskApp(name: "workflow-rabbitmq-tests")
        try app.register(Flow.add) { a, b in probe.called("add"); return a + b }
        try app.register(Flow.mul) { a, b in probe.called("mul"); return a * b }
        try app.register(Flow.collect) { values in probe.called("collect"); return values }
        try app.register(Flow.square) { value in
            probe.enter()
            defer { probe.leave() }
            // Long enough for the map's window to fill.
            try await Task.sleep(for: .milliseconds(2))
            return value * value
        }
        try app.register(Flow.unlucky) { value in
            probe.called("unlucky")
            guard value != 13 else { throw Unlucky() }
            return value
        }
        try app.register(Flow.sum) { values in probe.called("sum"); return values.reduce(0, +) }
        try app.register(Flow.tally) { outcomes in
            probe.called("tally")
            return outcomes.map { $0.succeeded ? "ok \($0.returning ?? -1)" : "failed" }
        }
        return app
    }

    /// Runs `body` with a client while a worker with a Redis workflow
    /// store serves `queue`.
    func withServices(
        queue: String, probe: Probe, concurrency: Int = 16, _ body: @Sendable (TaskClient, any WorkflowStore) async throws -> Void
    ) async throws {
        var logger = Logger(label: "qtasks.workflow-tests")
        logger.logLevel = .warning
        var storeConfiguration = ResultStoreConfiguration()
        storeConfiguration.keyPrefix = "qtasks-wf-test-" + UUID().uuidString.prefix(8).lowercased()
        let resultStore = try await ResultStores.open(url: WorkflowRedis.url, configuration: storeConfiguration)
        let store = try #require(resultStore as? any WorkflowStore)
        let broker = try RabbitMQBroker(url: Broker.url, logger: logger)
        var configuration = WorkerConfiguration(concurrency: concurrency, shutdownGracePeriod: .seconds(5))
        configuration.queues = [queue]
        configuration.logger = logger
        configuration.workflowStore = store
        let worker = Worker(broker: broker, app: try makeApp(probe), configuration: configuration)
        let client = TaskClient(broker: broker, logger: logger)
        let group = ServiceGroup(services: [broker, worker, client], gracefulShutdownSignals: [], logger: logger)
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            do {
                try await body(client, store)
            } catch {
                await group.triggerGracefulShutdown()
                await resultStore.close()
                throw error
            }
            await group.triggerGracefulShutdown()
            try await tasks.waitForAll()
        }
        await resultStore.close()
    }

    func uniqueQueue() -> String { "workflow-\(UUID().uuidString.prefix(8).lowercased())" }

    @Test func aChainOfThree() async throws {
        let queue = uniqueQueue()
        try await withServices(queue: queue, probe: Probe()) { client, store in
            // (2 + 3) * 4 + 10
            let chain = try Workflow.task(Flow.add, 2, 3).then(Flow.mul, 4).then(Flow.add, 10)
            let handle = try await client.send(chain, queue: queue)
            #expect(try await handle.value(timeout: .seconds(30)) == 30)
            let record = try await store.workflowRecord(for: handle.uuid)
            #expect(record?.status == .success)
            #expect(record?.root.taskCount == 3)
        }
    }

    @Test func aGroupOfAHundred() async throws {
        let queue = uniqueQueue()
        try await withServices(queue: queue, probe: Probe()) { client, _ in
            let group = Workflow.group(try (0..<100).map { try Workflow.task(Flow.add, $0, 1000) })
            #expect(try await client.send(group, queue: queue).value(timeout: .seconds(60)) == (0..<100).map { $0 + 1000 })
        }
    }

    @Test func aChordOfAThousandGivesItsCallbackEveryResultInOrder() async throws {
        let queue = uniqueQueue()
        let probe = Probe()
        try await withServices(queue: queue, probe: probe, concurrency: 32) { client, _ in
            let chord = try Workflow.chord(try (0..<1000).map { try Workflow.task(Flow.add, $0, 0) }, then: Flow.collect)
            #expect(try await client.send(chord, queue: queue).value(timeout: .seconds(120)) == Array(0..<1000))
            #expect(probe.calls("collect") == 1)
            #expect(probe.calls("add") == 1000)
        }
    }

    @Test func aMapOfTenThousandRunsAtMostFiftyAtOnce() async throws {
        let queue = uniqueQueue()
        let probe = Probe()
        try await withServices(queue: queue, probe: probe, concurrency: 64) { client, _ in
            let map = try Workflow.map(Flow.square, over: Array(0..<10_000), maxConcurrent: 50)
            let squares = try await client.send(map, queue: queue).value(timeout: .seconds(240))
            #expect(squares == (0..<10_000).map { $0 * $0 })
            #expect(probe.peak <= 50)
            #expect(probe.peak >= 10, "the window fills: more than a few run at once (peak \(probe.peak))")
            print("map of 10,000 with at most 50 at once: peak running \(probe.peak)")
        }
    }

    @Test func failFastWithOneFailingMember() async throws {
        let queue = uniqueQueue()
        let probe = Probe()
        try await withServices(queue: queue, probe: probe) { client, store in
            let chord = try Workflow.chord(try [1, 13, 3].map { try Workflow.task(Flow.unlucky, $0) }, then: Flow.sum)
            let handle = try await client.send(chord, queue: queue)
            let error = await #expect(throws: TaskFailedError.self) { _ = try await handle.value(timeout: .seconds(30)) }
            #expect(error?.message.contains("13 is unlucky") == true)
            #expect(try await store.workflowRecord(for: handle.uuid)?.status == .error)
            #expect(probe.calls("sum") == 0)
        }
    }

    @Test func allSettledWithOneFailingMember() async throws {
        let queue = uniqueQueue()
        try await withServices(queue: queue, probe: Probe()) { client, _ in
            let flow = try Workflow.group(try [1, 13, 3].map { try Workflow.task(Flow.unlucky, $0) }).settled().then(Flow.tally)
            #expect(try await client.send(flow, policy: .allSettled, queue: queue).value(timeout: .seconds(30)) == ["ok 1", "failed", "ok 3"])
        }
    }

    @Test func continueWithOneFailingMember() async throws {
        let queue = uniqueQueue()
        try await withServices(queue: queue, probe: Probe()) { client, store in
            let chord = try Workflow.chord(try [1, 13, 3].map { try Workflow.task(Flow.unlucky, $0) }, then: Flow.sum)
            let handle = try await client.send(chord, policy: .continueOnFailure, queue: queue)
            #expect(try await handle.value(timeout: .seconds(30)) == 4)
            let record = try await store.workflowRecord(for: handle.uuid)
            #expect(record?.status == .success)
        }
    }
}
