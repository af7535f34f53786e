import Foundation
import QTasks
import QTasksTesting
import Synchronization
import Testing

/// Opt-in deduplication by uuid (TaskOptions.deduplicated,
/// WorkerConfiguration.deduplicatesTasks) on the in-memory broker.
@Suite(.timeLimit(.minutes(1)))
struct DeduplicationTests {
    static let charge = TaskDefinition("dd.charge", arguments: Int.self, returning: Int.self, options: TaskOptions(deduplicated: true))
    static let plain = TaskDefinition("dd.plain", arguments: Int.self, returning: Int.self)
    static let refuse = TaskDefinition("dd.refuse", arguments: Int.self, returning: Int.self, options: TaskOptions(deduplicated: true))

    struct Refused: Error {}

    final class Counter: Sendable {
        private let counts = Mutex([String: Int]())
        func add(_ name: String) { counts.withLock { $0[name, default: 0] += 1 } }
        func count(_ name: String) -> Int { counts.withLock { $0[name, default: 0] } }
    }

    func app(_ counter: Counter) throws -> TaskApp {
        let app = TaskApp(name: "dedup")
        try app.register(Self.charge) { amount in counter.add("charge"); return amount * 100 }
        try app.register(Self.plain) { amount in counter.add("plain"); return amount }
        try app.register(Self.refuse) { _ in counter.add("refuse"); throw Refused() }
        return app
    }

    func configuration(_ store: MemoryResultStore?, all: Bool = false) -> WorkerConfiguration {
        var configuration = WorkerConfiguration(concurrency: 4, shutdownGracePeriod: .seconds(5))
        configuration.workflowStore = store
        configuration.deduplicatesTasks = all
        return configuration
    }

    /// The message of a sent task, published again as a producer's retry
    /// after a lost confirm would: same uuid, same body.
    func publishAgain(_ name: String, _ args: [JSONValue], uuid: String, replyTo: String?, on broker: MemoryBroker) async throws {
        let message = TaskMessage(taskName: name, args: args, uuid: uuid)
        try await broker.publish(
            Message(body: message.jsonBytes(), properties: MessageProperties(correlationID: uuid, replyTo: replyTo, messageID: uuid)),
            to: "default", mandatory: true)
    }

    func drained(_ broker: MemoryBroker) async throws {
        let deadline = ContinuousClock.now + .seconds(10)
        while ContinuousClock.now < deadline {
            if broker.readyCount(in: "default") == 0, broker.unackedCount == 0, broker.delayedCount == 0 { return }
            try await Task.sleep(for: .milliseconds(10))
        }
        Issue.record("the queue did not drain")
    }

    @Test func aDeduplicatedTaskDeliveredAgainIsNotRunAgainAndItsResultIsSentAgain() async throws {
        let counter = Counter()
        let store = MemoryResultStore()
        try await TestWorker.run(try app(counter), configuration: configuration(store)) { client, broker in
            let handle = try await client.send(Self.charge, 7)
            #expect(try await handle.value(timeout: .seconds(5)) == 700)
            let replies = try await broker.makeReplyQueue()
            try await publishAgain(Self.charge.name, [7], uuid: handle.uuid, replyTo: replies.name, on: broker)
            var iterator = replies.messages.makeAsyncIterator()
            let again = try #require(try await iterator.next())
            let result = try JSONDecoder().decode(TaskResult.self, from: Data(again.body))
            #expect(result.uuid == handle.uuid && result.returning == 700, "the recorded result, sent again")
            #expect(counter.count("charge") == 1)
        }
    }

    @Test func tasksWithoutTheOptionRunAgainUnlessTheWorkerDeduplicatesAll() async throws {
        for all in [false, true] {
            let counter = Counter()
            try await TestWorker.run(try app(counter), configuration: configuration(MemoryResultStore(), all: all)) { client, broker in
                let handle = try await client.send(Self.plain, 1)
                _ = try await handle.value(timeout: .seconds(5))
                try await publishAgain(Self.plain.name, [1], uuid: handle.uuid, replyTo: nil, on: broker)
                try await drained(broker)
                #expect(counter.count("plain") == (all ? 1 : 2), "deduplicatesTasks \(all)")
            }
        }
    }

    @Test func aFailedTaskDeliveredAgainRunsAgain() async throws {
        let counter = Counter()
        try await TestWorker.run(try app(counter), configuration: configuration(MemoryResultStore())) { client, broker in
            let handle = try await client.send(Self.refuse, 1)
            await #expect(throws: TaskFailedError.self) { _ = try await handle.value(timeout: .seconds(5)) }
            try await publishAgain(Self.refuse.name, [1], uuid: handle.uuid, replyTo: nil, on: broker)
            try await drained(broker)
            #expect(counter.count("refuse") == 2, "not held back by the first run's mark")
            #expect(broker.messages(in: "default.dlq").count == 2)
        }
    }

    @Test func deduplicationNeedsAStore() throws {
        var configuration = WorkerConfiguration(queues: ["default"])
        configuration.deduplicatesTasks = true
        #expect(throws: WorkerConfigurationError.self) { try configuration.validate() }
        configuration.workflowStore = MemoryResultStore()
        try configuration.validate()
    }
}
