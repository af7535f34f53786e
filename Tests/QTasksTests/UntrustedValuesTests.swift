import Foundation
import QTasks
import QTasksTesting
import Testing

/// Values from configuration, from tasks and from producers that would
/// otherwise crash, loop or lie: non-finite numbers, control characters,
/// missing ids, reply queues that do not exist.
@Suite struct UntrustedValuesTests {
    // MARK: Non-finite and huge times

    // Duration has no infinity or NaN: the largest durations stand for the
    // seconds that used to be infinite; multiplier and jitter stay ratios.
    @Test("Backoff delays stay within 0...1e9 s whatever its parameters", arguments: [
        Backoff(initial: .seconds(Int64.max)), Backoff(initial: .seconds(1), multiplier: .infinity),
        Backoff(initial: .seconds(1), multiplier: .nan), Backoff(initial: .seconds(1), maximum: .seconds(Int64.max)),
        Backoff(initial: .seconds(1), maximum: .seconds(-1)), Backoff(initial: .seconds(-5)),
        Backoff(initial: .seconds(1), jitter: .nan), Backoff(initial: .seconds(Int64.max), multiplier: 1e300),
    ])
    func backoffIsAlwaysFinite(_ backoff: Backoff) {
        for retry in [1, 2, 10, 1_000] {
            let delay = backoff.delay(forRetry: retry)
            #expect(delay >= .zero && delay <= .seconds(1_000_000_000), "\(backoff) retry \(retry): \(delay)")
        }
    }

    @Test func aTaskAskingForAHugeRetryDelayGetsAFiniteOne() async throws {
        let app = TaskApp()
        try app.register("again", options: TaskOptions(retry: RetryPolicy(maxAttempts: 2))) { (context: TaskContext) -> Int in
            throw TaskRetry("later", after: .seconds(Int64.max))
        }
        let broker = MemoryBroker()
        var configuration = quietConfiguration()
        configuration.retryPolicy = RetryPolicy(maxAttempts: 2)
        try await TestWorker.run(app, configuration: configuration, broker: broker) { _, broker in
            try await broker.publish(Message(body: Array(#"{"task_name": "again"}"#.utf8)), to: "default", mandatory: true)
            #expect(await eventually { broker.delayedCount == 1 })
            let delayed = try #require(broker.delayedMessages.first)
            if case .double(let delay)? = delayed.message.properties.headers[MessageHeaders.retryDelay] {
                #expect(delay.isFinite && delay <= 1e9)
            } else {
                Issue.record("no retry delay header: \(delayed.message.properties.headers)")
            }
        }
    }

    // MARK: Results JSON cannot represent

    @Test func aNonFiniteResultFailsTheTaskInsteadOfReportingNull() async throws {
        let app = TaskApp()
        try app.register("overflow") { (a: Double, b: Double) in a + b }
        try app.register("nested") { () in ["ok": JSONValue.double(1), "bad": .array([.double(-.infinity)])] as [String: JSONValue] }
        let executor = TaskRunner(app: app, logger: quietLogger)
        let overflow = await executor.execute(makeDelivery(#"{"task_name": "overflow", "args": [1.7e308, 1.7e308]}"#))
        #expect(outcomeIsFailed(overflow))
        #expect(overflow.result.returning == nil)
        #expect(overflow.result.traceback?.hasPrefix("NonFiniteNumberError: the value holds inf") == true, "\(overflow.result)")
        let nested = await executor.execute(makeDelivery(#"{"task_name": "nested"}"#))
        #expect(outcomeIsFailed(nested))
        #expect(nested.result.traceback?.contains("-inf") == true)
        #expect(throws: NonFiniteNumberError.self) { try JSONValue(encoding: Double.nan) }
        #expect(try JSONValue(encoding: 2.5) == .double(2.5))
    }

    private func outcomeIsFailed(_ outcome: TaskOutcome) -> Bool {
        if case .failed = outcome { return true }
        return false
    }

    // MARK: Producer text in logs

    @Test func logTextEscapesWhatWouldForgeOrGarbleALine() {
        #expect(LogText.sanitized("add") == "add")
        #expect(LogText.sanitized("Введите телефон 👨‍👩‍👧") == "Введите телефон 👨‍👩‍👧", "text and emoji (with joiners) untouched")
        #expect(LogText.sanitized("a\nb\r\tc") == "a\\nb\\r\\tc")
        #expect(LogText.sanitized("x\u{0}y\u{202E}z\u{1B}[31m") == "x\\u{0}y\\u{202E}z\\u{1B}[31m")
        let forged = "add\n2026-11-30T00:00:00+0000 info qtasks.worker: task succeeded uuid=forged"
        #expect(!LogText.sanitized(forged).contains("\n"))
        let long = String(repeating: "x", count: 10_000)
        #expect(LogText.sanitized(long).count == LogText.limit + 1)
    }

    // MARK: Ids and reply queues

    @Test func aTaskWithNoIdKeepsTheWorkersUuidAcrossRetriesAndIntoTheDeadLetterQueue() async throws {
        let app = TaskApp()
        try app.register("flaky") { () -> Int in throw CocoaError(.fileNoSuchFile) }
        let broker = MemoryBroker()
        broker.declareQueue("replies")
        var configuration = quietConfiguration()
        configuration.retryPolicy = RetryPolicy(maxAttempts: 2, backoff: Backoff(initial: .milliseconds(10), jitter: 0))
        try await TestWorker.run(app, configuration: configuration, broker: broker) { _, broker in
            // No uuid in the body, no message_id, no correlation_id.
            try await broker.publish(
                Message(body: Array(#"{"task_name": "flaky"}"#.utf8), properties: MessageProperties(replyTo: "replies")),
                to: "default", mandatory: true)
            #expect(await eventually { broker.readyCount(in: "default.dlq") == 1 })
            #expect(await eventually { broker.readyCount(in: "replies") == 1 })
        }
        let dead = try #require(broker.messages(in: "default.dlq").first)
        let reply = try #require(broker.messages(in: "replies").first)
        let result = try TaskResult(jsonBytes: reply.body)
        #expect(result.retry == 1, "the final result, after the retry")
        #expect(dead.properties.messageID == result.uuid, "the dead letter can be found by the uuid the client saw")
        #expect(reply.properties.correlationID == result.uuid)
    }

    @Test func aResultForAReplyQueueThatDoesNotExistIsDroppedAndTheTaskAcked() async throws {
        let app = TaskApp()
        try app.register("add") { (a: Int, b: Int) in a + b }
        let broker = MemoryBroker()
        try await TestWorker.run(app, configuration: quietConfiguration(), broker: broker) { _, broker in
            try await broker.publish(
                Message(
                    body: Array(#"{"task_name": "add", "args": [1, 2]}"#.utf8),
                    properties: MessageProperties(correlationID: "c", replyTo: "no-such-queue")),
                to: "default", mandatory: true)
            #expect(await eventually { broker.publishedCount >= 1 && broker.unackedCount == 0 && broker.readyCount(in: "default") == 0 })
            try await Task.sleep(for: .milliseconds(100))
            #expect(broker.readyCount(in: "default") == 0, "not requeued")
            #expect(broker.readyCount(in: "default.dlq") == 0, "not dead-lettered: the task succeeded")
        }
    }
}

/// JSON that parses but cannot become Swift values gets a plain message,
/// not Foundation's internal names or "an unreadable value".
@Suite struct UnreadableValueMessagesTests {
    @Test("Each unreadable value says what is wrong", arguments: [
        (#"{"task_name": "add", "args": [1e400, 1]}"#, "TaskInputError: add() argument 1: the number 1e400 is out of range"),
        (#"{"task_name": "echo", "args": [1e400]}"#, "TaskInputError: args could not be read: the number 1e400 is out of range"),
        (#"{"task_name": "echo", "kwargs": {"a": -1e999}}"#, "TaskInputError: kwargs could not be read: the number -1e999 is out of range"),
        (#"{"task_name": "add", "args": [1, 2], "created_at": 1e400}"#,
         "TaskInputError: created_at must be a number (Unix seconds), found a value that cannot be read (the number 1e400 is out of range)"),
        (#"{"task_name": "echo", "args": {"a": 1}}"#, "TaskInputError: args must be a JSON array, found object"),
    ])
    func messages(body: String, traceback: String) async throws {
        let app = TaskApp()
        try app.register("add") { (a: Double, b: Double) in a + b }
        try app.register("echo") { (context: TaskContext) -> JSONValue in .array(context.arguments.args) }
        let outcome = await TaskRunner(app: app, logger: quietLogger).execute(makeDelivery(body))
        #expect(outcome.result.traceback == traceback)
    }

    @Test func aLoneSurrogateIsNamed() async throws {
        let app = TaskApp()
        try app.register("echo") { (context: TaskContext) -> JSONValue in .array(context.arguments.args) }
        let outcome = await TaskRunner(app: app, logger: quietLogger).execute(makeDelivery(#"{"task_name": "echo", "args": ["\ud800"]}"#))
        #expect(outcome.result.traceback?.hasPrefix("TaskInputError: args could not be read: a string holds half of a UTF-16 surrogate pair") == true,
                "\(outcome.result.traceback ?? "nil")")
    }
}
