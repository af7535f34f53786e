import Foundation
import QTasks
import QTasksResultStores
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
        let deadline = ContinuousClock.now + .seconds(30)
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
            #expect(try await handle.value(timeout: .seconds(30)) == 700)
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
                _ = try await handle.value(timeout: .seconds(30))
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
            await #expect(throws: TaskFailedError.self) { _ = try await handle.value(timeout: .seconds(30)) }
            try await publishAgain(Self.refuse.name, [1], uuid: handle.uuid, replyTo: nil, on: broker)
            try await drained(broker)
            #expect(counter.count("refuse") == 2, "not held back by the first run's mark")
            #expect(broker.messages(in: "default.dlq").count == 2)
        }
    }

    static let stubborn = TaskDefinition("dd.stubborn", arguments: Int.self, returning: Int.self, options: TaskOptions(deduplicated: true))

    final class Flag: Sendable {
        private let value = Mutex(false)
        func set() { value.withLock { $0 = true } }
        var isSet: Bool { value.withLock { $0 } }
    }

    /// The connection is lost while a deduplicated task runs; the worker
    /// cancels it, but the task (in a call that ignores cancellation) runs
    /// to its end anyway. Its end must be recorded, though its Swift task is
    /// cancelled (GRDB refuses a cancelled task's write), so that the
    /// redelivery does not run it again (#17, broker SIGKILL with
    /// deduplication on).
    @Test func aTaskThatEndsAfterItsConnectionWasLostIsRecordedAndNotRunAgain() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("qtasks-dedup-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let opened = try await ResultStores.open(url: "sqlite://\(directory.path)/results.db")
        let store = try #require(opened as? any WorkflowStore)
        let counter = Counter()
        let release = Flag()
        let app = TaskApp(name: "dedup-lost")
        try app.register(Self.stubborn) { amount in
            counter.add("stubborn")
            // Blocking, as a call into a C library would: cancellation is
            // not seen.
            while !release.isSet { usleep(2_000) }
            return amount * 100
        }
        var configuration = WorkerConfiguration(concurrency: 2, shutdownGracePeriod: .seconds(5))
        configuration.workflowStore = store
        try await TestWorker.run(app, configuration: configuration) { client, broker in
            let handle = try await client.send(Self.stubborn, 3)
            let deadline = ContinuousClock.now + .seconds(30)
            while counter.count("stubborn") == 0, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(5)) }
            try #require(counter.count("stubborn") == 1)
            await broker.failConsumers(with: BrokerError(.connectionLost, "test: connection lost"))
            release.set()
            #expect(try await handle.value(timeout: .seconds(30)) == 300)
            try await drained(broker)
            #expect(counter.count("stubborn") == 1, "the redelivery is answered from the record, not run again")
        }
        await opened.close()
    }

    /// A copy of a uuid that is running, marked as a later attempt, is
    /// deferred while the run goes on (the running mark is this consumer
    /// session's), then answered from its record.
    @Test func aCopyOfATaskRunningInThisProcessWaitsForItInsteadOfRunningBeside() async throws {
        let counter = Counter()
        let release = Flag()
        let app = TaskApp(name: "dedup-beside")
        try app.register(Self.stubborn) { amount in
            counter.add("stubborn")
            while !release.isSet { try await Task.sleep(for: .milliseconds(2)) }
            return amount * 100
        }
        try await TestWorker.run(app, configuration: configuration(MemoryResultStore())) { client, broker in
            let handle = try await client.send(Self.stubborn, 4)
            let deadline = ContinuousClock.now + .seconds(30)
            while counter.count("stubborn") == 0, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(5)) }
            try #require(counter.count("stubborn") == 1)
            let message = TaskMessage(taskName: Self.stubborn.name, args: [4], uuid: handle.uuid)
            try await broker.publish(
                Message(body: message.jsonBytes(), properties: MessageProperties(
                    correlationID: handle.uuid, messageID: handle.uuid, headers: [MessageHeaders.attempt: .int(2)])),
                to: "default", mandatory: true)
            // The copy is deferred (held by the broker), not started.
            let deferred = ContinuousClock.now + .seconds(30)
            while broker.delayedCount == 0, ContinuousClock.now < deferred { try await Task.sleep(for: .milliseconds(5)) }
            #expect(broker.delayedCount == 1)
            #expect(counter.count("stubborn") == 1)
            release.set()
            #expect(try await handle.value(timeout: .seconds(30)) == 400)
            try await drained(broker)
            #expect(counter.count("stubborn") == 1, "the copy is answered from the record once the run has ended")
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
