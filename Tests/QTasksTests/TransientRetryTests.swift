import Foundation
import QTasks
import QTasksTesting
import Synchronization
import Testing

/// Transient infrastructure errors (issue #17 item 6): which errors count,
/// the bounds, as pure values.
@Suite struct TransientRetryPolicyTests {
    struct StoreDown: TransientError, CustomStringConvertible {
        var description: String { "store down" }
    }
    struct Sometimes: TransientError {
        var transient: Bool
        var isTransient: Bool { transient }
    }
    struct Plain: Error {}

    @Test func classification() {
        let classify = TransientRetryPolicy.isTransientByDefault
        #expect(classify(StoreDown()))
        #expect(classify(Sometimes(transient: true)))
        #expect(!classify(Sometimes(transient: false)))
        #expect(!classify(Plain()))
        #expect(classify(ResultStoreError(.unavailable, "redis down")))
        #expect(!classify(ResultStoreError(.corrupt, "bad record")))
        #expect(!classify(ResultStoreError(.timedOut, "no end in time")))
        // A dependency whose factory threw a transient error (a State store
        // that cannot be opened) counts as what it wraps.
        let wrapped = DependencyError(.factoryFailed, "dependency 'state store' failed", dependency: "state store", underlyingError: StoreDown())
        #expect(classify(wrapped))
        let twice = DependencyError(.factoryFailed, "outer", dependency: "cart", underlyingError: wrapped)
        #expect(classify(twice))
        #expect(!classify(DependencyError(.factoryFailed, "x", dependency: "db", underlyingError: Plain())))
        #expect(!classify(DependencyError(.unavailable, "no scope", dependency: "db")))
        #expect(!classify(NonRetryableError(StoreDown())), "the task's own word wins")
    }

    @Test func boundedByRetriesAndTime() {
        let policy = TransientRetryPolicy(
            maxRetries: 3, maxDuration: .seconds(10), backoff: Backoff(initial: .seconds(1), multiplier: 2, maximum: .seconds(60), jitter: 0))
        #expect(policy.decision(after: Plain(), retries: 0, since: nil, now: 100) == nil)
        #expect(policy.decision(after: StoreDown(), retries: 0, since: nil, now: 100) == .retry(after: .seconds(1)))
        #expect(policy.decision(after: StoreDown(), retries: 1, since: 100, now: 101) == .retry(after: .seconds(2)))
        #expect(policy.decision(after: StoreDown(), retries: 2, since: 100, now: 103) == .retry(after: .seconds(4)))
        guard case .giveUp(let reason)? = policy.decision(after: StoreDown(), retries: 3, since: 100, now: 107) else {
            Issue.record("a fourth transient retry must be refused")
            return
        }
        #expect(reason == "still failing after 3 transient-error retries over 7.0 s")
        // The time bound: a retry that would run past maxDuration is not made.
        guard case .giveUp(let late)? = policy.decision(after: StoreDown(), retries: 2, since: 100, now: 107) else {
            Issue.record("a retry past maxDuration must be refused")
            return
        }
        #expect(late.contains("the limit is 10.0 s"), "\(late)")
        #expect(TransientRetryPolicy.disabled.decision(after: StoreDown(), retries: 0, since: nil, now: 0) == nil)
        let defaults = TransientRetryPolicy()
        #expect(defaults.maxRetries == 10 && defaults.maxDuration == .seconds(600))
        #expect(defaults.backoff == Backoff(initial: .seconds(1), multiplier: 2, maximum: .seconds(60), jitter: 0.2))
    }
}

/// The worker retries transient infrastructure errors through the broker's
/// delayed publishing (here the memory broker's timer), even for tasks with
/// no retry policy, and dead-letters once the budget is spent.
@Suite struct WorkerTransientRetryTests {
    struct StoreDown: TransientError, CustomStringConvertible {
        var description: String { "store down" }
    }
    struct Broken: Error, CustomStringConvertible {
        var description: String { "broken" }
    }

    /// The worker's default retry policy (none), fast transient retries.
    static func configuration(transient: TransientRetryPolicy = fast) -> WorkerConfiguration {
        var configuration = quietConfiguration()
        configuration.transientRetry = transient
        return configuration
    }

    static let fast = TransientRetryPolicy(
        maxRetries: 5, maxDuration: .seconds(60), backoff: Backoff(initial: .milliseconds(20), multiplier: 2, maximum: .milliseconds(100), jitter: 0))

    @Test func aTransientErrorIsRetriedUntilTheStoreIsBackWithoutARetryPolicy() async throws {
        let runs = Mutex<[Int]>([])
        let storeUp = Atomic<Bool>(false)
        let app = TaskApp()
        // A worker-scoped store whose factory fails while it is "down", as
        // `.stateStore(url:)` does with Redis away.
        let store = Dependency<String>("state store", scope: .worker) { _ in
            guard storeUp.load(ordering: .relaxed) else { throw StoreDown() }
            return "store"
        }
        try app.register("step1") { (context: TaskContext) -> String in
            runs.withLock { $0.append(context.attempt) }
            if runs.withLock({ $0.count }) >= 4 { storeUp.store(true, ordering: .relaxed) }
            return try await context.resolve(store)
        }
        let broker = MemoryBroker()
        try await TestWorker.run(app, configuration: Self.configuration(), broker: broker) { client, broker in
            let result = try await client.send("step1").result(timeout: .seconds(30))
            #expect(result.status == .success, "\(result.traceback ?? "")")
            #expect(result.returning == "store")
            #expect(result.retry == 3, "transient retries are attempts: the result counts them")
            #expect(broker.readyCount(in: "default.dlq") == 0)
        }
        #expect(runs.withLock { $0 } == [1, 2, 3, 4])
    }

    @Test func aNonTransientErrorIsStillDeadLetteredAtOnce() async throws {
        let runs = Atomic<Int>(0)
        let app = TaskApp()
        try app.register("broken") { (_: TaskContext) -> Int in
            runs.add(1, ordering: .relaxed)
            throw Broken()
        }
        let broker = MemoryBroker()
        try await TestWorker.run(app, configuration: Self.configuration(), broker: broker) { client, broker in
            let result = try await client.send("broken").result(timeout: .seconds(30))
            #expect(result.status == .error && result.traceback == "Broken: broken")
            #expect(await eventually { broker.readyCount(in: "default.dlq") == 1 })
        }
        #expect(runs.load(ordering: .relaxed) == 1)
    }

    @Test func aStoreThatStaysDownIsDeadLetteredAfterTheBudgetSayingSo() async throws {
        let runs = Atomic<Int>(0)
        let app = TaskApp()
        try app.register("step1") { (_: TaskContext) -> Int in
            runs.add(1, ordering: .relaxed)
            throw ResultStoreError(.unavailable, "cannot read Redis at redis://127.0.0.1:1/0: Connection refused")
        }
        let broker = MemoryBroker()
        try await TestWorker.run(app, configuration: Self.configuration(), broker: broker) { client, broker in
            let result = try await client.send("step1").result(timeout: .seconds(30))
            #expect(result.status == .error)
            let traceback = result.traceback ?? ""
            #expect(traceback.hasPrefix("ResultStoreError: cannot read Redis at redis://127.0.0.1:1/0: Connection refused"), "\(traceback)")
            #expect(traceback.contains("still failing after 5 transient-error retries"), "\(traceback)")
            #expect(result.retry == 5)
            #expect(await eventually { broker.readyCount(in: "default.dlq") == 1 })
            let dead = try #require(broker.messages(in: "default.dlq").first)
            #expect(dead.properties.headers[MessageHeaders.transientRetries] == .int(5))
            #expect(dead.properties.headers[MessageHeaders.attempts] == .int(6))
            guard case .string(let message)? = dead.properties.headers[MessageHeaders.errorMessage] else {
                Issue.record("no error message header")
                return
            }
            #expect(message.contains("transient-error retries"), "\(message)")
        }
        #expect(runs.load(ordering: .relaxed) == 6)
    }

    @Test func transientRetriesDoNotUseUpTheTasksOwnAttempts() async throws {
        let runs = Mutex<[String]>([])
        let app = TaskApp()
        // Own policy: 2 runs. Three transient failures, then one real one,
        // then success: 5 runs, the task's own retry still available.
        let own = RetryPolicy(maxAttempts: 2, backoff: Backoff(initial: .milliseconds(10), jitter: 0))
        try app.register("work", options: TaskOptions(retry: own)) { (context: TaskContext) -> Int in
            let run = runs.withLock { $0.count }
            switch run {
            case 0, 1, 2:
                runs.withLock { $0.append("transient") }
                throw StoreDown()
            case 3:
                runs.withLock { $0.append("broken") }
                throw Broken()
            default:
                runs.withLock { $0.append("ok") }
                return context.attempt
            }
        }
        try await TestWorker.run(app, configuration: Self.configuration()) { client, broker in
            let result = try await client.send("work").result(timeout: .seconds(30))
            #expect(result.status == .success, "\(result.traceback ?? "")")
            #expect(result.returning == 5)
            #expect(broker.readyCount(in: "default.dlq") == 0)
        }
        #expect(runs.withLock { $0 } == ["transient", "transient", "transient", "broken", "ok"])
    }

    @Test func disabledMeansTheOldBehaviourAndATaskMayChooseItsOwn() async throws {
        let runs = Atomic<Int>(0)
        let app = TaskApp()
        try app.register("step1") { (_: TaskContext) -> Int in
            runs.add(1, ordering: .relaxed)
            throw StoreDown()
        }
        // Per task: two transient retries, whatever the worker says.
        let twice = TransientRetryPolicy(maxRetries: 2, backoff: Backoff(initial: .milliseconds(10), jitter: 0))
        try app.register("step2", options: TaskOptions(transientRetry: twice)) { (_: TaskContext) -> Int in
            runs.add(100, ordering: .relaxed)
            throw StoreDown()
        }
        try await TestWorker.run(app, configuration: Self.configuration(transient: .disabled)) { client, broker in
            let first = try await client.send("step1").result(timeout: .seconds(30))
            #expect(first.status == .error && first.traceback == "StoreDown: store down")
            let second = try await client.send("step2").result(timeout: .seconds(30))
            #expect(second.status == .error && second.retry == 2)
            #expect(await eventually { broker.readyCount(in: "default.dlq") == 2 })
        }
        #expect(runs.load(ordering: .relaxed) == 301)
    }
}
