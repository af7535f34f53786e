import Foundation
import QTasks
import QTasksTesting
import Synchronization
import Testing

/// Backoff arithmetic and retry decisions, as pure values.
@Suite struct RetryPolicyTests {
    @Test func backoffDoublesUpToTheCap() {
        let backoff = Backoff(initial: .seconds(1), multiplier: 2, maximum: .seconds(5), jitter: 0)
        #expect((1...5).map { backoff.delay(forRetry: $0) } == [1, 2, 4, 5, 5].map { .seconds($0) })
        #expect(backoff.delay(forRetry: 10_000) == .seconds(5), "no overflow for huge retry numbers")
    }

    @Test func jitterTakesOffAtMostItsFraction() {
        let backoff = Backoff(initial: .seconds(10), multiplier: 1, maximum: .seconds(10), jitter: 0.25)
        #expect(backoff.delay(forRetry: 1, random: 0) == .seconds(10))
        #expect(backoff.delay(forRetry: 1, random: 0.999_999) > .milliseconds(7500))
        for _ in 0..<100 {
            let delay = backoff.delay(forRetry: 1)
            #expect(delay > .milliseconds(7500) && delay <= .seconds(10))
        }
    }

    struct Transient: Error {}
    struct Fatal: Error {}

    @Test func decisions() {
        let policy = RetryPolicy(maxAttempts: 3, backoff: Backoff(initial: .seconds(2), jitter: 0), retryingOnly: [Transient.self])
        #expect(policy.decision(after: Transient(), attempt: 1) == .retry(after: .seconds(2)))
        #expect(policy.decision(after: Transient(), attempt: 2) == .retry(after: .seconds(4)))
        #expect(policy.decision(after: Transient(), attempt: 3) == .giveUp(reason: "attempt 3 of 3 failed"))
        #expect(policy.decision(after: Fatal(), attempt: 1) == .giveUp(reason: "the retry policy does not retry Fatal"))
        // The task's own word wins over the predicate, not over maxAttempts.
        #expect(policy.decision(after: TaskRetry("busy", after: .seconds(7)), attempt: 1) == .retry(after: .seconds(7)))
        #expect(policy.decision(after: TaskRetry("busy"), attempt: 3) == .giveUp(reason: "attempt 3 of 3 failed"))
        let retryAll = RetryPolicy(maxAttempts: 5)
        for error: any Error in [NonRetryableError(Transient()), TaskCancellation(reason: "no"), TaskInputError(.unknownTask, "x")] {
            guard case .giveUp = retryAll.decision(after: error, attempt: 1) else {
                Issue.record("\(error) must not be retried")
                continue
            }
        }
        #expect(RetryPolicy.never.decision(after: Transient(), attempt: 1) == .giveUp(reason: "attempt 1 of 1 failed"))
    }
}

/// Retries, dead letters, self-cancel and time limits through a worker on
/// the memory broker.
@Suite struct WorkerRetryTests {
    struct Flaky: Error, CustomStringConvertible {
        var description: String { "flaky service" }
    }

    /// Records the attempts a task saw and when.
    final class Attempts: Sendable {
        private let state = Mutex<[(attempt: Int, at: ContinuousClock.Instant)]>([])
        func record(_ attempt: Int) { state.withLock { $0.append((attempt, .now)) } }
        var numbers: [Int] { state.withLock { $0.map(\.attempt) } }
        /// Seconds between consecutive attempts.
        var gaps: [Double] {
            let times = state.withLock { $0.map(\.at) }
            return zip(times, times.dropFirst()).map { pair in
                let gap = pair.1 - pair.0
                return Double(gap.components.seconds) + Double(gap.components.attoseconds) / 1e18
            }
        }
    }

    func configuration(retry: RetryPolicy = .never, timeLimit: Duration? = nil) -> WorkerConfiguration {
        var configuration = quietConfiguration()
        configuration.retryPolicy = retry
        configuration.taskTimeLimit = timeLimit
        return configuration
    }

    func send(_ body: String, to broker: MemoryBroker, correlationID: String = "c1") async throws {
        broker.declareQueue("replies")
        try await broker.publish(
            Message(body: Array(body.utf8), properties: MessageProperties(correlationID: correlationID, replyTo: "replies")),
            to: "default", mandatory: true)
    }

    @Test func alwaysFailingTaskIsDeadLetteredAfterExactlyMaxAttemptsWithBackoff() async throws {
        let attempts = Attempts()
        let app = TaskApp()
        let policy = RetryPolicy(maxAttempts: 3, backoff: Backoff(initial: .milliseconds(500), multiplier: 2, jitter: 0))
        try app.register("flaky", options: TaskOptions(retry: policy)) { (context: TaskContext) -> Int in
            attempts.record(context.attempt)
            throw Flaky()
        }
        let broker = MemoryBroker()
        try await TestWorker.run(app, configuration: configuration(), broker: broker) { _, broker in
            try await send(#"{"uuid": "u1", "task_name": "flaky"}"#, to: broker)
            // While a retry waits, the broker holds it and the worker holds
            // nothing. The original is acked only after its retry copy is
            // confirmed, so both become true a moment apart: wait for both,
            // inside the 0.5 s the first retry waits.
            #expect(await eventually { broker.delayedCount == 1 && broker.unackedCount == 0 })
            #expect(await eventually { broker.readyCount(in: "default.dlq") == 1 })
        }
        #expect(attempts.numbers == [1, 2, 3])
        let gaps = attempts.gaps
        #expect(gaps.count == 2)
        // At least the backoff; the upper bounds only catch a delay gone
        // wrong by an order of magnitude, with room for a loaded machine.
        #expect(gaps[0] >= 0.5 && gaps[0] < 10, "\(gaps)")
        #expect(gaps[1] >= 1.0 && gaps[1] < 10, "\(gaps)")

        let dead = try #require(broker.messages(in: "default.dlq").first)
        let headers = dead.properties.headers
        #expect(headers[MessageHeaders.attempts] == .int(3))
        #expect(headers[MessageHeaders.attempt] == .int(3))
        #expect(headers[MessageHeaders.errorType] == .string("Flaky"))
        #expect(headers[MessageHeaders.errorMessage] == .string("flaky service"))
        #expect(headers[MessageHeaders.originQueue] == .string("default"))
        guard case .double(let first)? = headers[MessageHeaders.firstFailedAt],
              case .double(let last)? = headers[MessageHeaders.failedAt] else {
            Issue.record("failure times missing: \(headers)")
            return
        }
        #expect(last - first >= 0.29, "first \(first), last \(last)")

        // One result only, the final one.
        let replies = broker.messages(in: "replies")
        #expect(replies.count == 1)
        let result = try TaskResult(jsonBytes: try #require(replies.first).body)
        #expect(result.status == .error)
        #expect(result.retry == 2)
        #expect(result.traceback == "Flaky: flaky service")
        #expect(broker.readyCount(in: "default") == 0)
    }

    @Test func taskThatSucceedsOnItsSecondAttemptReportsOneRetry() async throws {
        let attempts = Attempts()
        let app = TaskApp()
        try app.register("second_time") { (context: TaskContext) -> String in
            attempts.record(context.attempt)
            if context.attempt == 1 { throw Flaky() }
            return "ok"
        }
        let broker = MemoryBroker()
        let policy = RetryPolicy(maxAttempts: 5, backoff: Backoff(initial: .milliseconds(10), jitter: 0))
        try await TestWorker.run(app, configuration: configuration(retry: policy), broker: broker) { _, broker in
            try await send(#"{"task_name": "second_time"}"#, to: broker)
            #expect(await eventually { broker.readyCount(in: "replies") == 1 })
            try await Task.sleep(for: .milliseconds(50))
        }
        #expect(attempts.numbers == [1, 2])
        let replies = broker.messages(in: "replies")
        #expect(replies.count == 1)
        let result = try TaskResult(jsonBytes: replies[0].body)
        #expect(result.status == .success)
        #expect(result.retry == 1)
        #expect(broker.readyCount(in: "default.dlq") == 0)
    }

    @Test func nonRetryableErrorAndTheTasksOwnRetryRequest() async throws {
        let attempts = Attempts()
        let app = TaskApp()
        try app.register("permanent") { (context: TaskContext) -> Int in
            attempts.record(context.attempt)
            throw NonRetryableError(Flaky())
        }
        try app.register("asks") { (context: TaskContext) -> Int in
            if context.attempt < 3 { try context.retry("not yet", after: .milliseconds(10)) }
            return context.attempt
        }
        let broker = MemoryBroker()
        // The policy retries nothing by its predicate: only TaskRetry does.
        let policy = RetryPolicy(maxAttempts: 4, backoff: Backoff(initial: .milliseconds(10), jitter: 0)) { _ in false }
        try await TestWorker.run(app, configuration: configuration(retry: policy), broker: broker) { _, broker in
            try await send(#"{"task_name": "permanent"}"#, to: broker, correlationID: "p")
            try await send(#"{"task_name": "asks"}"#, to: broker, correlationID: "a")
            #expect(await eventually { broker.readyCount(in: "replies") == 2 })
        }
        #expect(attempts.numbers == [1])
        let results = try broker.messages(in: "replies").reduce(into: [String: TaskResult]()) {
            $0[$1.properties.correlationID ?? ""] = try TaskResult(jsonBytes: $1.body)
        }
        #expect(results["p"]?.traceback == "Flaky: flaky service")
        #expect(results["p"]?.retry == 0)
        #expect(results["a"]?.status == .success)
        #expect(results["a"]?.returning == 3)
        #expect(results["a"]?.retry == 2)
        #expect(broker.messages(in: "default.dlq").count == 1)
    }

    @Test func taskCancellingItselfGetsACancelResultAndIsAcknowledged() async throws {
        let app = TaskApp()
        try app.register("gives_up") { (context: TaskContext) -> Int in
            try context.cancel(reason: "order was withdrawn")
        }
        let broker = MemoryBroker()
        try await TestWorker.run(app, configuration: configuration(retry: RetryPolicy(maxAttempts: 3)), broker: broker) { _, broker in
            try await send(#"{"task_name": "gives_up"}"#, to: broker)
            #expect(await eventually { broker.readyCount(in: "replies") == 1 })
            #expect(await eventually { broker.unackedCount == 0 })
        }
        let result = try TaskResult(jsonBytes: broker.messages(in: "replies")[0].body)
        #expect(result.status == .cancel)
        #expect(result.traceback == "TaskCancellation: order was withdrawn")
        #expect(broker.readyCount(in: "default.dlq") == 0)
        #expect(broker.readyCount(in: "default") == 0)
        #expect(broker.delayedCount == 0)
    }

    @Test func perTaskTimeLimitWinsAndTheRetryPolicyAppliesToTimeouts() async throws {
        let attempts = Attempts()
        let app = TaskApp()
        let options = TaskOptions(retry: RetryPolicy(maxAttempts: 2, backoff: Backoff(initial: .milliseconds(10), jitter: 0)), timeLimit: .milliseconds(100))
        try app.register("slow", options: options) { (context: TaskContext) -> Int in
            attempts.record(context.attempt)
            try await Task.sleep(for: .seconds(30))
            return 1
        }
        try app.register("unlimited", options: TaskOptions(timeLimit: .zero)) { () async throws -> Int in
            try await Task.sleep(for: .milliseconds(300))
            return 2
        }
        let broker = MemoryBroker()
        // The worker's own limit (0.2 s) would stop "unlimited"; its option lifts it.
        try await TestWorker.run(app, configuration: configuration(timeLimit: .milliseconds(200)), broker: broker) { _, broker in
            try await send(#"{"task_name": "slow"}"#, to: broker, correlationID: "s")
            try await send(#"{"task_name": "unlimited"}"#, to: broker, correlationID: "u")
            #expect(await eventually { broker.readyCount(in: "replies") == 2 })
        }
        #expect(attempts.numbers == [1, 2])
        let results = try broker.messages(in: "replies").reduce(into: [String: TaskResult]()) {
            $0[$1.properties.correlationID ?? ""] = try TaskResult(jsonBytes: $1.body)
        }
        #expect(results["s"]?.status == .error)
        #expect(results["s"]?.traceback == "TaskTimeLimitError: task 'slow' exceeded its time limit of 0.1 s")
        #expect(results["s"]?.retry == 1)
        #expect(results["u"]?.returning == 2)
        #expect(broker.messages(in: "default.dlq").first?.properties.headers[MessageHeaders.errorType] == .string("TaskTimeLimitError"))
    }

    @Test func badInputIsNeverRetried() async throws {
        let broker = MemoryBroker()
        let app = TaskApp()
        try await TestWorker.run(app, configuration: configuration(retry: RetryPolicy(maxAttempts: 5)), broker: broker) { _, broker in
            try await send(#"{"task_name": "nope"}"#, to: broker)
            #expect(await eventually { broker.readyCount(in: "default.dlq") == 1 })
        }
        #expect(broker.delayedCount == 0)
        #expect(broker.messages(in: "default.dlq")[0].properties.headers[MessageHeaders.attempts] == .int(1))
    }
}
