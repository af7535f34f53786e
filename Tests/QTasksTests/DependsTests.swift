import Foundation
import QTasks
import QTasksTesting
import Synchronization
import Testing

/// Depends on the executor: ordering, caching, nesting, outcomes, errors.
@Suite struct DependsTests {
    let executor: @Sendable (TaskApp) -> TaskRunner = { TaskRunner(app: $0, logger: quietLogger) }

    @Test func setupAndTeardownRunInReverseOrder() async throws {
        let log = EventLog()
        let a = loggedResource("a", log: log)
        let b = loggedResource("b", log: log, needs: [a])
        let c = loggedResource("c", log: log, needs: [b])
        let app = TaskApp()
        try app.register("work") { (context: TaskContext) in
            _ = try await context.resolve(c)
            _ = try await context.resolve(a)
            log.record("handler")
        }
        let outcome = await execute(app, #"{"task_name":"work"}"#)
        #expect(outcome.isCompleted)
        #expect(log.all == [
            "setup a", "setup b", "setup c", "handler",
            "teardown c success", "teardown b success", "teardown a success",
        ])
    }

    @Test func teardownAfterSuccessSeesSuccess() async throws {
        let log = EventLog()
        let db = loggedResource("db", log: log)
        let app = TaskApp()
        try app.register("ok") { (context: TaskContext) -> String in
            _ = try await context.resolve(db)
            return "done"
        }
        let outcome = await execute(app, #"{"task_name":"ok"}"#)
        #expect(outcome.result.returning == "done")
        #expect(log.all == ["setup db", "teardown db success"])
    }

    @Test func teardownAfterAThrowSeesTheError() async throws {
        let log = EventLog()
        let db = loggedResource("db", log: log)
        let app = TaskApp()
        try app.register("fails") { (context: TaskContext) -> Int in
            _ = try await context.resolve(db)
            throw Boom()
        }
        let outcome = await execute(app, #"{"task_name":"fails"}"#)
        #expect(outcome.isFailed)
        #expect(outcome.result.traceback == "Boom: it went boom")
        #expect(log.all == ["setup db", "teardown db error:it went boom"])
    }

    /// The transaction pattern: commit after success, roll back otherwise.
    @Test func teardownCanCommitOrRollBack() async throws {
        let log = EventLog()
        let transaction = Dependency<String>("transaction") { _ in
            .value("tx", teardown: { _, outcome in
                log.record(outcome.failed ? "rollback" : "commit")
            })
        }
        let app = TaskApp()
        try app.register("save") { (context: TaskContext, fail: Bool) in
            _ = try await context.resolve(transaction)
            if fail { throw Boom() }
        }
        _ = await execute(app, #"{"task_name":"save","args":[false]}"#)
        _ = await execute(app, #"{"task_name":"save","args":[true]}"#)
        #expect(log.all == ["commit", "rollback"])
    }

    @Test func teardownRunsWhenTheCallIsCancelled() async throws {
        let log = EventLog()
        let started = EventLog()
        // The teardown itself awaits: it must not be cut short by the
        // cancellation of the call.
        let db = Dependency<FakeResource>("db") { resolver in
            .value(FakeResource("db", openedBy: resolver.context?.uuid), teardown: { resource, outcome in
                try await Task.sleep(for: .milliseconds(30))
                resource.close(by: TaskContext.current?.uuid, outcome: outcome)
                log.record("teardown db \(outcome.label) after sleeping")
            })
        }
        let app = TaskApp()
        try app.register("forever") { (context: TaskContext) in
            _ = try await context.resolve(db)
            started.record("started")
            try await Task.sleep(for: .seconds(60))
        }
        let executor = executor(app)
        let run = Task { await executor.execute(makeDelivery(#"{"uuid":"u-c","task_name":"forever"}"#)) }
        #expect(await eventually { started.count("started") == 1 })
        run.cancel()
        let outcome = try await withDeadline { await run.value }
        #expect(outcome.isCancelled)
        #expect(log.all == ["teardown db cancelled after sleeping"])
    }

    @Test func teardownRunsAfterTheTimeLimit() async throws {
        let log = EventLog()
        let db = loggedResource("db", log: log)
        let app = TaskApp()
        try app.register("slow") { (context: TaskContext) in
            _ = try await context.resolve(db)
            try await Task.sleep(for: .seconds(60))
        }
        let executor = TaskRunner(app: app, taskTimeLimit: .milliseconds(100), logger: quietLogger)
        let start = ContinuousClock.now
        let outcome = try await withDeadline { await executor.execute(makeDelivery(#"{"task_name":"slow"}"#)) }
        #expect(ContinuousClock.now - start < .seconds(30), "ended by the 0.1 s limit, not the 60 s sleep")
        #expect(outcome.isFailed)
        #expect(outcome.result.traceback == "TaskTimeLimitError: task 'slow' exceeded its time limit of 0.1 s")
        #expect(log.all == ["setup db", "teardown db error:task 'slow' exceeded its time limit of 0.1 s"])
    }

    @Test func timeLimitDoesNotTouchFastTasks() async throws {
        let app = TaskApp()
        try app.register("fast") { () in 42 }
        let executor = TaskRunner(app: app, taskTimeLimit: .seconds(5), logger: quietLogger)
        let outcome = await executor.execute(makeDelivery(#"{"task_name":"fast"}"#))
        #expect(outcome.result.returning == 42)
    }

    @Test func nestedDependenciesShareTheCallsInstance() async throws {
        struct Repository: Sendable {
            let db: FakeResource
        }
        let log = EventLog()
        let db = loggedResource("db", log: log)
        let repository = Dependency<Repository>("repository") { resolver in
            Repository(db: try await resolver.resolve(db))
        }
        let app = TaskApp()
        try app.register("nested") { (context: TaskContext) -> Bool in
            let repo = try await context.resolve(repository)
            let direct = try await context.resolve(db)
            return repo.db === direct
        }
        #expect(await execute(app, #"{"task_name":"nested"}"#).result.returning == true)
        #expect(log.all == ["setup db", "teardown db success"])
    }

    @Test func taskScopeIsOneInstancePerCall() async throws {
        let setups = Atomic<Int>(0)
        let db = Dependency<FakeResource>("db") { resolver in
            setups.add(1, ordering: .relaxed)
            // Slow, so that the concurrent resolutions below overlap.
            try await Task.sleep(for: .milliseconds(20))
            return .value(FakeResource("db", openedBy: resolver.context?.uuid))
        }
        let app = TaskApp()
        try app.register("ids") { (context: TaskContext) -> [Int] in
            async let first = context.resolve(db)
            async let second = context.resolve(db)
            let third = try await context.resolve(db)
            return try await [first.id, second.id, third.id]
        }
        let executor = executor(app)
        let one = await executor.execute(makeDelivery(#"{"task_name":"ids"}"#)).result.returning
        let two = await executor.execute(makeDelivery(#"{"task_name":"ids"}"#)).result.returning
        guard case .array(let ids1)? = one, case .array(let ids2)? = two else {
            Issue.record("unexpected results \(String(describing: one)) \(String(describing: two))")
            return
        }
        #expect(Set(ids1).count == 1, "same instance within a call")
        #expect(Set(ids2).count == 1)
        #expect(ids1[0] != ids2[0], "a new instance per call")
        #expect(setups.load(ordering: .relaxed) == 2)
    }

    @Test func plainSyncAndAsyncFactories() async throws {
        struct Config: Sendable { var url = "db://local" }
        let config = Dependency<Config>("config") { _ in Config() }
        let greeting = Dependency<String>("greeting") { resolver in
            try await Task.sleep(for: .milliseconds(1))
            return "hello \(try await resolver.resolve(config).url)"
        }
        let app = TaskApp()
        try app.register("greet") { (context: TaskContext) -> String in
            try await context.resolve(greeting)
        }
        #expect(await execute(app, #"{"task_name":"greet"}"#).result.returning == "hello db://local")
    }

    @Test func cycleIsAnErrorNamingThePath() async throws {
        // Declared lazily through a box, as a real cycle across files would be.
        let box = Mutex<Dependency<Int>?>(nil)
        let a = Dependency<Int>("a") { resolver in
            let b = box.withLock { $0! }
            return try await resolver.resolve(b) + 1
        }
        let b = Dependency<Int>("b") { resolver in try await resolver.resolve(a) + 1 }
        box.withLock { $0 = b }
        let app = TaskApp()
        try app.register("cyclic") { (context: TaskContext) -> Int in try await context.resolve(a) }
        let outcome = try await withDeadline { await execute(app, #"{"task_name":"cyclic"}"#) }
        #expect(outcome.isFailed)
        #expect(outcome.result.traceback == "DependencyError: dependency cycle: a -> b -> a")
    }

    @Test func selfDependencyIsACycle() async throws {
        let box = Mutex<Dependency<Int>?>(nil)
        let me = Dependency<Int>("me", scope: .worker) { resolver in
            try await resolver.resolve(box.withLock { $0! })
        }
        box.withLock { $0 = me }
        let app = TaskApp()
        try app.register("self") { (context: TaskContext) -> Int in try await context.resolve(me) }
        let outcome = try await withDeadline { await execute(app, #"{"task_name":"self"}"#) }
        #expect(outcome.result.traceback == "DependencyError: dependency cycle: me -> me")
    }

    /// Two tasks start the two halves of a worker-scoped cycle at the same
    /// time: each factory waits for the other's creation. The wait graph
    /// catches it; nothing hangs.
    @Test func cycleAcrossConcurrentWorkerScopedCreationsIsAnError() async throws {
        let box = Mutex<Dependency<Int>?>(nil)
        let a = Dependency<Int>("a", scope: .worker) { resolver in
            try await Task.sleep(for: .milliseconds(50))
            return try await resolver.resolve(box.withLock { $0! })
        }
        let b = Dependency<Int>("b", scope: .worker) { resolver in
            try await Task.sleep(for: .milliseconds(50))
            return try await resolver.resolve(a)
        }
        box.withLock { $0 = b }
        let app = TaskApp()
        try app.register("want_a") { (context: TaskContext) -> Int in try await context.resolve(a) }
        try app.register("want_b") { (context: TaskContext) -> Int in try await context.resolve(b) }
        let executor = executor(app)
        let outcomes = try await withDeadline {
            async let first = executor.execute(makeDelivery(#"{"task_name":"want_a"}"#))
            async let second = executor.execute(makeDelivery(#"{"task_name":"want_b"}"#))
            return await [first, second]
        }
        for outcome in outcomes {
            #expect(outcome.isFailed)
            let traceback = outcome.result.traceback ?? ""
            #expect(
                traceback == "DependencyError: dependency cycle: a -> b -> a"
                    || traceback == "DependencyError: dependency cycle: b -> a -> b",
                "\(traceback)"
            )
        }
        await executor.tearDownWorkerDependencies()
    }

    @Test func factoryErrorNamesTheDependencyAndTearsDownTheOthers() async throws {
        let log = EventLog()
        let cache = loggedResource("cache", log: log)
        let database = Dependency<FakeResource>("database") { _ in throw ConnectionRefused() }
        let app = TaskApp()
        try app.register("report") { (context: TaskContext) in
            _ = try await context.resolve(cache)
            _ = try await context.resolve(database)
            log.record("handler body")
        }
        let outcome = await execute(app, #"{"task_name":"report"}"#)
        #expect(outcome.isFailed)
        #expect(outcome.result.status == .error)
        #expect(outcome.result.traceback == "DependencyError: dependency 'database' failed: connection refused")
        #expect(outcome.failure?.errorType == "DependencyError")
        #expect(log.all == [
            "setup cache",
            "teardown cache error:dependency 'database' failed: connection refused",
        ])
    }

    @Test func nestedFactoryErrorNamesThePathAndTearsDownTheSetUpPart() async throws {
        let log = EventLog()
        let config = loggedResource("config", log: log)
        let database = Dependency<FakeResource>("database") { resolver in
            _ = try await resolver.resolve(config)
            throw ConnectionRefused()
        }
        let repository = Dependency<Int>("repository") { resolver in
            _ = try await resolver.resolve(database)
            return 1
        }
        let app = TaskApp()
        try app.register("report") { (context: TaskContext) -> Int in try await context.resolve(repository) }
        let outcome = await execute(app, #"{"task_name":"report"}"#)
        let error = "dependency 'database' failed: connection refused (resolving repository -> database)"
        #expect(outcome.result.traceback == "DependencyError: \(error)")
        #expect(log.all == ["setup config", "teardown config error:\(error)"])
    }

    @Test func dependencyErrorCarriesTheCause() async throws {
        let database = Dependency<Int>("database") { _ in throw ConnectionRefused() }
        let app = TaskApp()
        try app.register("probe") { (context: TaskContext) -> String in
            do {
                _ = try await context.resolve(database)
                return "resolved"
            } catch let error as DependencyError {
                let cause = error.underlyingError is ConnectionRefused
                return "\(error.code) \(error.dependency) \(error.path) \(cause)"
            }
        }
        #expect(await execute(app, #"{"task_name":"probe"}"#).result.returning == #"factoryFailed database ["database"] true"#)
    }

    @Test func throwingTeardownFailsASuccessfulTaskAndTheOthersStillRun() async throws {
        let log = EventLog()
        let first = loggedResource("first", log: log)
        let flaky = Dependency<Int>("flaky") { _ in
            .value(1, teardown: { _, _ in throw ConnectionRefused() })
        }
        let app = TaskApp()
        try app.register("commit") { (context: TaskContext) -> Int in
            _ = try await context.resolve(first)
            return try await context.resolve(flaky)
        }
        let outcome = await execute(app, #"{"task_name":"commit"}"#)
        #expect(outcome.isFailed)
        #expect(outcome.result.returning == nil)
        #expect(outcome.result.traceback == "DependencyError: teardown of dependency 'flaky' failed: connection refused")
        #expect(log.all == ["setup first", "teardown first success"])
    }

    @Test func throwingTeardownKeepsTheHandlersError() async throws {
        let flaky = Dependency<Int>("flaky") { _ in
            .value(1, teardown: { _, _ in throw ConnectionRefused() })
        }
        let app = TaskApp()
        try app.register("fails") { (context: TaskContext) -> Int in
            _ = try await context.resolve(flaky)
            throw Boom()
        }
        let outcome = await execute(app, #"{"task_name":"fails"}"#)
        #expect(outcome.result.traceback == "Boom: it went boom")
    }

    @Test func workerScopedFactoryCannotUseTaskScopedDependencies() async throws {
        let request = Dependency<Int>("request") { _ in 1 }
        let pool = Dependency<Int>("pool", scope: .worker) { resolver in try await resolver.resolve(request) }
        let app = TaskApp()
        try app.register("use") { (context: TaskContext) -> Int in try await context.resolve(pool) }
        let outcome = await execute(app, #"{"task_name":"use"}"#)
        #expect(outcome.result.traceback?.hasPrefix(
            "DependencyError: worker-scoped dependency 'pool' cannot use task-scoped dependency 'request'"
        ) == true)
    }

    @Test func workerScopedFailureIsNotCached() async throws {
        let attempts = Atomic<Int>(0)
        let pool = Dependency<Int>("pool", scope: .worker) { _ in
            if attempts.add(1, ordering: .relaxed).newValue == 1 { throw ConnectionRefused() }
            return 7
        }
        let app = TaskApp()
        try app.register("use") { (context: TaskContext) -> Int in try await context.resolve(pool) }
        let executor = executor(app)
        let first = await executor.execute(makeDelivery(#"{"task_name":"use"}"#))
        let second = await executor.execute(makeDelivery(#"{"task_name":"use"}"#))
        let third = await executor.execute(makeDelivery(#"{"task_name":"use"}"#))
        #expect(first.result.traceback == "DependencyError: dependency 'pool' failed: connection refused")
        #expect(second.result.returning == 7)
        #expect(third.result.returning == 7)
        #expect(attempts.load(ordering: .relaxed) == 2)
        await executor.tearDownWorkerDependencies()
    }

    @Test func taskScopedFactorySeesTheTaskContext() async throws {
        let caller = Dependency<String>("caller") { resolver in
            "\(resolver.context?.uuid ?? "none") \(resolver.path)"
        }
        let app = TaskApp()
        try app.register("who") { (context: TaskContext) -> String in try await context.resolve(caller) }
        #expect(await execute(app, #"{"uuid":"u-9","task_name":"who"}"#).result.returning == #"u-9 ["caller"]"#)
    }

    @Test func resolvingWithAHandMadeContextIsAnError() async throws {
        let db = Dependency<Int>("db") { _ in 1 }
        let context = TaskContext(uuid: "u", taskName: "t")
        await #expect(throws: DependencyError.self) { try await context.resolve(db) }
        do {
            _ = try await context.resolve(db)
        } catch let error as DependencyError {
            #expect(error.code == .unavailable)
            #expect(error.message.hasPrefix("dependency 'db' is unavailable"))
        }
    }

    @Test func resolvingAfterTheCallEndedIsAnError() async throws {
        let db = Dependency<Int>("db") { _ in 1 }
        let leaked = Mutex<TaskContext?>(nil)
        let app = TaskApp()
        try app.register("leak") { (context: TaskContext) in leaked.withLock { $0 = context } }
        _ = await execute(app, #"{"task_name":"leak"}"#)
        let context = try #require(leaked.withLock { $0 })
        await #expect(throws: DependencyError.self) { try await context.resolve(db) }
    }
}
