import Foundation
@testable import QTasks
import QTasksTesting
import Synchronization
import Testing

/// The worker's deadline from the broker's `consumer_timeout`, and tasks
/// acknowledged on start (#17 item 5), on the memory broker.
@Suite struct ConsumerTimeoutTests {
    /// What a task saw: its attempts, and whether its delivery was still
    /// unacknowledged while it ran.
    final class Runs: Sendable {
        private let state = Mutex<[Int]>([])
        private let unacked = Mutex<[Int]>([])
        func record(_ attempt: Int, unackedNow: Int) {
            state.withLock { $0.append(attempt) }
            unacked.withLock { $0.append(unackedNow) }
        }
        var attempts: [Int] { state.withLock { $0 } }
        var unackedWhileRunning: [Int] { unacked.withLock { $0 } }
    }

    func configuration(consumerTimeout: Duration?, margin: Duration? = nil, concurrency: Int = 10, retry: RetryPolicy = .never)
        -> WorkerConfiguration
    {
        var configuration = quietConfiguration(concurrency: concurrency)
        configuration.consumerTimeout = consumerTimeout
        configuration.consumerTimeoutMargin = margin
        configuration.retryPolicy = retry
        return configuration
    }

    func send(_ body: String, to broker: MemoryBroker, correlationID: String = "c1") async throws {
        broker.declareQueue("replies")
        try await broker.publish(
            Message(body: Array(body.utf8), properties: MessageProperties(correlationID: correlationID, replyTo: "replies")),
            to: "default", mandatory: true)
    }

    func results(_ broker: MemoryBroker) throws -> [String: [TaskResult]] {
        try broker.messages(in: "replies").reduce(into: [:]) {
            $0[$1.properties.correlationID ?? "", default: []].append(try TaskResult(jsonBytes: $1.body))
        }
    }

    @Test func marginAndDeadline() {
        #expect(ConsumerTimeoutBudget.margin(for: .seconds(10)) == .seconds(1))
        #expect(ConsumerTimeoutBudget.margin(for: .seconds(180)) == .seconds(18))
        #expect(ConsumerTimeoutBudget.margin(for: .seconds(1800)) == .seconds(60))
        #expect(ConsumerTimeoutBudget.margin(for: .seconds(5)) == .seconds(1))
        #expect(ConsumerTimeoutBudget(configured: .seconds(1800), margin: nil).deadline == .seconds(1740))
        #expect(ConsumerTimeoutBudget(configured: .seconds(10), margin: .seconds(2)).deadline == .seconds(8))
        // A margin of more than half the timeout would stop tasks early for nothing.
        #expect(ConsumerTimeoutBudget(configured: .seconds(10), margin: .seconds(9)).deadline == .seconds(5))
        #expect(ConsumerTimeoutBudget(configured: nil, margin: nil).deadline == nil)
        #expect(ConsumerTimeoutBudget(configured: .zero, margin: nil).timeout == nil)
    }

    @Test func theBrokersTimeoutIsLearntFromItsReplyWhenShorter() {
        let reply = "PRECONDITION_FAILED - delivery acknowledgement on channel 1 timed out. Timeout value used: 10000 ms. This timeout value can be configured, see consumers doc guide to learn more"
        #expect(ConsumerTimeoutBudget.brokerTimeout(inReply: reply) == .seconds(10))
        #expect(ConsumerTimeoutBudget.brokerTimeout(inReply: "PRECONDITION_FAILED - unknown delivery tag 1") == nil)
        #expect(ConsumerTimeoutBudget.brokerTimeout(inReply: "PRECONDITION_FAILED - message size 20 is larger than configured max size 10") == nil)
        let budget = ConsumerTimeoutBudget(configured: .seconds(1800), margin: nil)
        #expect(!budget.learn(.seconds(3600)), "a longer timeout than the configured one changes nothing")
        #expect(budget.timeout == .seconds(1800))
        #expect(budget.learn(.seconds(10)))
        #expect(budget.timeout == .seconds(10))
        #expect(budget.deadline == .seconds(9))
        #expect(!budget.learn(.seconds(10)))
        let unknown = ConsumerTimeoutBudget(configured: nil, margin: nil)
        #expect(unknown.learn(.seconds(60)))
        #expect(unknown.timeout == .seconds(60))
    }

    @Test func configurationRefusesANonPositiveTimeout() {
        var configuration = quietConfiguration()
        configuration.consumerTimeout = .zero
        #expect(throws: WorkerConfigurationError.self) { try configuration.validate() }
        // Shorter than a second: every delivery would be past its deadline
        // before it started, requeued for ever.
        configuration.consumerTimeout = .nanoseconds(1)
        #expect(throws: WorkerConfigurationError.self) { try configuration.validate() }
        configuration.consumerTimeout = .milliseconds(100)
        #expect(throws: Never.self) { try configuration.validate() }
        configuration.consumerTimeout = nil
        #expect(throws: Never.self) { try configuration.validate() }
        configuration.consumerTimeout = .seconds(10)
        configuration.consumerTimeoutMargin = .seconds(-1)
        #expect(throws: WorkerConfigurationError.self) { try configuration.validate() }
    }

    /// The reproduction of #17 item 5 in memory: a task longer than the
    /// consumer timeout is stopped before it, retried as its policy says,
    /// then dead-lettered with a reason that names consumer_timeout.
    @Test func aTaskPastTheConsumerTimeoutFailsThroughRetriesToTheDeadLetterQueue() async throws {
        let runs = Runs()
        let app = TaskApp()
        let broker = MemoryBroker()
        try app.register("long") { (context: TaskContext) -> Int in
            runs.record(context.attempt, unackedNow: broker.unackedCount(in: "default"))
            try await Task.sleep(for: .seconds(30))
            return 1
        }
        let policy = RetryPolicy(maxAttempts: 2, backoff: Backoff(initial: .milliseconds(10), jitter: 0))
        try await TestWorker.run(
            app, configuration: configuration(consumerTimeout: .seconds(1), margin: .milliseconds(300), retry: policy), broker: broker
        ) { _, broker in
            try await send(#"{"task_name": "long"}"#, to: broker)
            #expect(await eventually(timeout: .seconds(20)) { broker.readyCount(in: "default.dlq") == 1 })
        }
        #expect(runs.attempts == [1, 2])
        let result = try #require(try results(broker)["c1"]?.first)
        #expect(result.status == .error)
        #expect(result.traceback?.hasPrefix("ConsumerTimeoutError: task 'long' had not finished 0.7 s after its delivery (its wait in the worker's prefetch buffer included); RabbitMQ's consumer_timeout is 1 s") == true)
        let deadLetter = try #require(broker.messages(in: "default.dlq").first)
        #expect(deadLetter.properties.headers[MessageHeaders.errorType] == .string("ConsumerTimeoutError"))
        #expect(deadLetter.properties.headers[MessageHeaders.attempts] == .int(2))
        #expect(broker.readyCount(in: "default") == 0)
        #expect(try results(broker).values.joined().count == 1, "one result: the last attempt's")
    }

    /// The task's own time limit still wins when it is the earlier one.
    @Test func anEarlierTimeLimitStaysATimeLimitError() async throws {
        let app = TaskApp()
        try app.register("slow", options: TaskOptions(timeLimit: .milliseconds(200))) { () async throws -> Int in
            try await Task.sleep(for: .seconds(30))
            return 1
        }
        let broker = MemoryBroker()
        try await TestWorker.run(app, configuration: configuration(consumerTimeout: .seconds(60)), broker: broker) { _, broker in
            try await send(#"{"task_name": "slow"}"#, to: broker)
            #expect(await eventually { broker.readyCount(in: "default.dlq") == 1 })
        }
        #expect(broker.messages(in: "default.dlq").first?.properties.headers[MessageHeaders.errorType] == .string("TaskTimeLimitError"))
    }

    /// TaskAcknowledgement.onStart: the delivery is acknowledged before the
    /// handler runs, so the task may outlive the consumer timeout; it runs
    /// once and its result is published.
    @Test func aTaskAcknowledgedOnStartOutlivesTheConsumerTimeout() async throws {
        let runs = Runs()
        let app = TaskApp()
        let broker = MemoryBroker()
        try app.register("long", options: TaskOptions(acknowledgement: .onStart)) { (context: TaskContext) -> Int in
            runs.record(context.attempt, unackedNow: broker.unackedCount(in: "default"))
            try await Task.sleep(for: .milliseconds(1500))
            return 7
        }
        try await TestWorker.run(
            app, configuration: configuration(consumerTimeout: .milliseconds(500), margin: .milliseconds(100)), broker: broker
        ) { _, broker in
            try await send(#"{"task_name": "long"}"#, to: broker)
            #expect(await eventually(timeout: .seconds(20)) { broker.readyCount(in: "replies") == 1 })
        }
        #expect(runs.attempts == [1])
        #expect(runs.unackedWhileRunning == [0], "acknowledged before the handler ran")
        let result = try #require(try results(broker)["c1"]?.first)
        #expect(result.status == .success)
        #expect(result.returning == 7)
        #expect(broker.readyCount(in: "default.dlq") == 0)
        #expect(broker.readyCount(in: "default") == 0)
    }

    /// A failure of a task acknowledged on start still goes to the
    /// dead-letter queue (a publish), and nothing settles the delivery twice.
    @Test func aTaskAcknowledgedOnStartThatFailsIsDeadLettered() async throws {
        let app = TaskApp()
        struct Broken: Error {}
        try app.register("breaks", options: TaskOptions(acknowledgement: .onStart)) { () async throws -> Int in
            throw Broken()
        }
        let broker = MemoryBroker()
        try await TestWorker.run(app, configuration: configuration(consumerTimeout: .seconds(60)), broker: broker) { _, broker in
            try await send(#"{"task_name": "breaks"}"#, to: broker)
            #expect(await eventually { broker.readyCount(in: "default.dlq") == 1 })
        }
        #expect(try results(broker)["c1"]?.first?.status == .error)
        #expect(broker.readyCount(in: "default") == 0)
    }

    /// A delivery that waited in the prefetch buffer past its deadline is
    /// requeued unrun (no attempt spent), then runs normally.
    @Test func aDeliveryBufferedPastItsDeadlineIsRequeuedNotFailed() async throws {
        let runs = Runs()
        let app = TaskApp()
        let broker = MemoryBroker()
        // Exempt itself, it keeps the only slot past the other's deadline.
        try app.register("hog", options: TaskOptions(acknowledgement: .onStart)) { () async throws -> Int in
            try await Task.sleep(for: .milliseconds(1500))
            return 1
        }
        try app.register("quick") { (context: TaskContext) -> Int in
            runs.record(context.attempt, unackedNow: 0)
            return 2
        }
        try await TestWorker.run(
            app, configuration: configuration(consumerTimeout: .seconds(1), margin: .milliseconds(200), concurrency: 1), broker: broker
        ) { _, broker in
            try await send(#"{"task_name": "hog"}"#, to: broker, correlationID: "hog")
            try await send(#"{"task_name": "quick"}"#, to: broker, correlationID: "quick")
            #expect(await eventually(timeout: .seconds(20)) { broker.readyCount(in: "replies") == 2 })
        }
        #expect(runs.attempts == [1], "run once, on its first attempt")
        #expect(try results(broker)["quick"]?.first?.status == .success)
        #expect(broker.readyCount(in: "default.dlq") == 0)
    }
}
