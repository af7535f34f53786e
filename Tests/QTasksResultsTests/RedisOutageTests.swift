import AMQP
import Foundation
import Logging
import QTasks
import QTasksRabbitMQ
import QTasksResultStores
import Synchronization
import TestSupport
import Testing

/// The RabbitMQ the tests use (`QTASKS_URL`; deploy/test.sh starts one).
enum TestBroker {
    static let url = ProcessInfo.processInfo.environment["QTASKS_URL"] ?? "amqp://guest:guest@127.0.0.1:5672/%2F"
    static let enabled: Bool = {
        if ProcessInfo.processInfo.environment["QTASKS_REQUIRE_BROKER"] == "1" { return true }
        guard let components = URLComponents(string: url), let host = components.host else { return false }
        return TCPPort.isOpen(host: host, port: components.port ?? 5672)
    }()
}

/// Collects log messages (all levels) for assertions.
final class CapturedLogs: Sendable {
    private let lines = Mutex<[String]>([])
    func append(_ line: String) { lines.withLock { $0.append(line) } }
    var all: [String] { lines.withLock { $0 } }
    func contains(_ text: String) -> Bool { lines.withLock { $0.contains { $0.contains(text) } } }
}

struct CapturingLogHandler: LogHandler {
    let logs: CapturedLogs
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .info
    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }
    func log(event: LogEvent) {
        logs.append("\(event.level) \(event.message) \(event.metadata ?? [:])")
    }
}

/// Redis taken away under a running worker that records into it: tasks go
/// on completing and being acknowledged; the events wait in the worker's
/// buffer and reach the store once Redis is back (issue #12, "Must show").
@Suite(
    .enabled(if: TestBroker.enabled, "no RabbitMQ at QTASKS_URL; deploy/rabbitmq.sh start"),
    .enabled(if: PrivateRedis.binary != nil, "redis-server is not installed"),
    .serialized)
struct RedisOutageTests {
    enum Fault: String, CaseIterable, CustomTestStringConvertible {
        /// The server exits (connections refused until it restarts).
        case stopped
        /// The server is frozen (SIGSTOP): every call runs into its timeout.
        case frozen
        var testDescription: String { rawValue }
    }

    @Test(.timeLimit(.minutes(3)), arguments: Fault.allCases)
    func tasksCompleteWhileRedisIsAwayAndTheRecordsCatchUp(_ fault: Fault) async throws {
        try await PrivateRedis.with { redis in try await run(fault, redis) }
    }

    private func run(_ fault: Fault, _ redis: PrivateRedis) async throws {
        let total = 2_000
        let store = try await ResultStores.open(
            url: redis.url, configuration: ResultStoreConfiguration(timeout: .milliseconds(500), keyPrefix: "outage"))
        let queue = "qtasks-outage-\(UUID().uuidString.prefix(8).lowercased())"

        let done = Mutex(Set<String>())
        let app = TaskApp()
        try app.register("work") { (context: TaskContext) async throws -> Int in
            // About 500 tasks/s at concurrency 10: the run lasts a few
            // seconds, long enough to take Redis away in the middle.
            try await Task.sleep(for: .milliseconds(20))
            done.withLock { _ = $0.insert(context.uuid) }
            return 1
        }
        let logs = CapturedLogs()
        var configuration = WorkerConfiguration(queues: [queue], concurrency: 10, shutdownGracePeriod: .seconds(10))
        configuration.logger = Logger(label: "outage") { _ in CapturingLogHandler(logs: logs) }
        configuration.events = TaskEventRecording(sinks: [store], flushInterval: .milliseconds(20), lossLogInterval: .seconds(30))
        let broker = try RabbitMQBroker(url: TestBroker.url)
        try await broker.connect()
        let worker = Worker(broker: broker, app: app, configuration: configuration)

        var outage: Duration = .zero
        var doneDuringOutage = 0
        var catchUp: Duration = .zero
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await worker.run() }
            try await TaskClient.withClient(broker: broker) { client in
                let requests = (0..<total).map { _ in TaskRequest("work", queue: queue) }
                try await client.sendWithoutReply(batch: requests)
            }
            func count() -> Int { done.withLock { $0.count } }
            #expect(await eventually(timeout: .seconds(60)) { count() >= 300 })
            let away = ContinuousClock.now
            switch fault {
            case .stopped: await redis.stop()
            case .frozen: redis.freeze()
            }
            let before = count()
            // Tasks keep completing (and being acknowledged) without Redis.
            #expect(await eventually(timeout: .seconds(60)) { count() >= before + 900 })
            doneDuringOutage = count() - before
            switch fault {
            case .stopped: try await redis.start()
            case .frozen: redis.thaw()
            }
            outage = ContinuousClock.now - away
            let back = ContinuousClock.now
            #expect(await eventually(timeout: .seconds(60)) { count() == total })
            // Every task's end reaches the store.
            let recorded = try await eventually(timeout: .seconds(60)) {
                let records = (try? await store.records(matching: TaskRecordQuery(statuses: [.success], limit: total + 10))) ?? []
                return records.count == total
            }
            #expect(recorded)
            catchUp = ContinuousClock.now - back
            worker.triggerGracefulShutdown()
            try await group.waitForAll()
        }
        // Acknowledged: nothing is left in the queue after the worker stopped
        // (an unacknowledged delivery would be back in it).
        try await AMQPConnection.withConnection(try AMQPConfiguration(url: TestBroker.url)) { connection in
            try await connection.withChannel { channel in
                let info = try await channel.declareQueue(queue, passive: true)
                #expect(info.messageCount == 0)
                try await channel.deleteQueue(queue)
                _ = try? await channel.deleteQueue(queue + ".dlq")
            }
        }
        await broker.close()
        await store.close()
        #expect(done.withLock { $0.count } == total)
        #expect(logs.contains("cannot record task events"))
        #expect(logs.contains("task events recorded again"))
        #expect(!logs.contains("task events dropped"))
        print(
            "redis \(fault.rawValue): outage \(Seconds.format(outage)) s, \(doneDuringOutage) tasks completed meanwhile, "
                + "all \(total) records in the store \(Seconds.format(catchUp)) s after Redis returned")
    }
}

private enum Seconds {
    static func format(_ duration: Duration) -> String {
        let (seconds, attoseconds) = duration.components
        return String(format: "%.2f", Double(seconds) + Double(attoseconds) / 1e18)
    }
}
