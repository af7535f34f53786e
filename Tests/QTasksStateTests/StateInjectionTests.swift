import Foundation
import Logging
import QTasks
import QTasksState
import QTasksStateStores
import QTasksTesting
import Synchronization
import Testing

/// State injected into task handlers on a running worker (MemoryBroker):
/// `Dependency<any StateStore>.stateStore(...)` and `TaskContext.state(_:key:from:)`.
@Suite("State injection")
struct StateInjectionTests {
    struct MyState: StateNamespace {}

    static let quiet: WorkerConfiguration = {
        var logger = Logger(label: "qtasks.test")
        logger.logLevel = .critical
        return WorkerConfiguration(concurrency: 20, shutdownGracePeriod: .seconds(5), logger: logger)
    }()

    /// The seed's step1 and step2, with an optional user key.
    static func registerSteps(on app: TaskApp, stateStore: Dependency<any StateStore>, printed: Locked<[[String: JSONValue]]>)
        throws
    {
        try app.register("step1", parameters: ["user"]) { (context: TaskContext, user: String?) -> String in
            let state = try await context.state(MyState.self, key: user, from: stateStore)
            try await state.set("state", to: "await_phone")
            try await state.update(["step": 1, "prompt": "Введите телефон"])
            return "ok"
        }
        try app.register("step2", parameters: ["user"]) { (context: TaskContext, user: String?) -> String in
            let state = try await context.state(MyState.self, key: user, from: stateStore)
            let all = try await state.getAll()
            printed.withLock { $0.append(all) }
            guard try await state.get("state") == .string("await_phone") else { return "error" }
            try await state.update(["step": 2])
            try await state.delete("state")
            try await state.clear()
            return "ok"
        }
    }

    @Test func seedStepsShareInjectedStateAndTheStoreIsClosedAtShutdown() async throws {
        let store = ClosingProbe(MemoryStateStore())
        let printed = Locked<[[String: JSONValue]]>([])
        let app = TaskApp()
        try Self.registerSteps(on: app, stateStore: .stateStore(store), printed: printed)
        try await TestWorker.run(app, configuration: Self.quiet) { client, _ in
            let first = try await client.send("step1").result(timeout: .seconds(30))
            #expect(first.status == .success && first.returning == "ok", "\(first.traceback ?? "")")
            #expect(
                try await store.getAll(in: StateID(namespace: "MyState"))
                    == ["state": "await_phone", "step": 1, "prompt": "Введите телефон"])
            let second = try await client.send("step2").result(timeout: .seconds(30))
            #expect(second.status == .success && second.returning == "ok", "\(second.traceback ?? "")")
            #expect(printed.withLock { $0 } == [["state": "await_phone", "step": 1, "prompt": "Введите телефон"]])
            #expect(try await store.getAll(in: StateID(namespace: "MyState")) == [:], "step2 cleared it")
            // A second step2 finds nothing: "error", as in the seed.
            let again = try await client.send("step2").result(timeout: .seconds(30))
            #expect(again.returning == "error")
            #expect(store.closes == 0, "open while the worker runs")
        }
        #expect(store.closes == 1, "closed once, at shutdown")
    }

    @Test func anOpenStoreIsLeftOpenWhenAskedTo() async throws {
        let store = ClosingProbe(MemoryStateStore())
        let app = TaskApp()
        let stateStore: Dependency<any StateStore> = .stateStore(store, closesAtShutdown: false)
        try app.register("touch") { (context: TaskContext) in
            try await context.state(MyState.self, from: stateStore).set("touched", to: true)
        }
        try await TestWorker.run(app, configuration: Self.quiet) { client, _ in
            let result = try await client.send("touch").result(timeout: .seconds(30))
            #expect(result.status == .success, "\(result.traceback ?? "")")
        }
        #expect(store.closes == 0)
        #expect(try await store.get("touched", in: StateID(namespace: "MyState")) == true)
    }

    @Test func keysKeepUsersApart() async throws {
        let store = MemoryStateStore()
        let printed = Locked<[[String: JSONValue]]>([])
        let app = TaskApp()
        try Self.registerSteps(on: app, stateStore: .stateStore(store), printed: printed)
        try await TestWorker.run(app, configuration: Self.quiet) { client, _ in
            let first = try await client.send("step1", "alice").result(timeout: .seconds(30))
            #expect(first.returning == "ok", "\(first.traceback ?? "")")
            #expect(try await client.send("step2", kwargs: ["user": "bob"]).result(timeout: .seconds(30)).returning == "error")
            #expect(try await store.getAll(in: StateID(namespace: "MyState", key: "alice"))["step"] == 1)
            #expect(try await client.send("step2", kwargs: ["user": "alice"]).result(timeout: .seconds(30)).returning == "ok")
            #expect(try await store.getAll(in: StateID(namespace: "MyState", key: "alice")) == [:])
        }
    }

    /// `memory://` opens a new, empty store each time: a count of 100 proves
    /// that the 100 concurrent tasks got one store, opened once.
    @Test func oneStoreIsOpenedForTheWorkerAndSharedByConcurrentTasks() async throws {
        let tasks = 100
        let stateStore: Dependency<any StateStore> = .stateStore(url: "memory://")
        let app = TaskApp()
        try app.register("bump") { (context: TaskContext) -> Int64 in
            try await context.state(MyState.self, key: "counter", from: stateStore).increment("n")
        }
        try app.register("read") { (context: TaskContext) -> Int64? in
            try await context.state(MyState.self, key: "counter", from: stateStore).get("n", as: Int64.self)
        }
        try await TestWorker.run(app, configuration: Self.quiet) { client, _ in
            var handles: [TaskHandle<JSONValue>] = []
            for _ in 0..<tasks { handles.append(try await client.send("bump")) }
            var seen: Set<JSONValue?> = []
            for handle in handles {
                let result = try await handle.result(timeout: .seconds(20))
                #expect(result.status == .success, "\(result.traceback ?? "")")
                seen.insert(result.returning)
            }
            #expect(seen.count == tasks, "every increment saw the others")
            #expect(try await client.send("read").result(timeout: .seconds(30)).returning == .int(Int64(tasks)))
        }
    }

    /// A store that cannot be opened fails the task with an error naming the
    /// dependency and the cause; the open is not cached, so the worker
    /// recovers once the backend can be opened.
    @Test func aBackendThatCannotBeOpenedFailsTheTaskUntilItCanBe() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let missing = directory.path + "/not-yet"
        let stateStore: Dependency<any StateStore> = .stateStore(url: "sqlite://\(missing)/state.db")
        let app = TaskApp()
        try app.register("step1") { (context: TaskContext) -> String in
            try await context.state(MyState.self, from: stateStore).set("state", to: "await_phone")
            return "ok"
        }
        // StateError(unavailable) is transient: the worker would retry the
        // task (TransientRetryTests); here each send is to fail at once.
        var configuration = Self.quiet
        configuration.transientRetry = .disabled
        try await TestWorker.run(app, configuration: configuration) { client, _ in
            let failed = try await client.send("step1").result(timeout: .seconds(30))
            #expect(failed.status == .error)
            let traceback = failed.traceback ?? ""
            #expect(traceback.contains("dependency 'state store' failed"), "\(traceback)")
            #expect(traceback.contains("state.db"), "the cause names the file: \(traceback)")

            try FileManager.default.createDirectory(atPath: missing, withIntermediateDirectories: false)
            let recovered = try await client.send("step1").result(timeout: .seconds(30))
            #expect(recovered.status == .success && recovered.returning == "ok", "\(recovered.traceback ?? "")")
        }
        // Written to the file, and the file closed: another store reads it.
        let reopened = try await StateStores.open(url: "sqlite://\(missing)/state.db")
        #expect(try await reopened.get("state", in: StateID(namespace: "MyState")) == "await_phone")
        await reopened.close()
    }

    @Test func anEmptyKeyFailsTheTaskWithInvalidArgument() async throws {
        let stateStore: Dependency<any StateStore> = .stateStore(MemoryStateStore())
        let app = TaskApp()
        try app.register("step1", parameters: ["user"]) { (context: TaskContext, user: String?) -> String in
            _ = try await context.state(MyState.self, key: user, from: stateStore)
            return "ok"
        }
        try await TestWorker.run(app, configuration: Self.quiet) { client, _ in
            let result = try await client.send("step1", "").result(timeout: .seconds(30))
            #expect(result.status == .error)
            #expect(result.traceback?.contains("must not be empty") == true, "\(result.traceback ?? "")")
        }
    }

    @Test func aContextNotMadeByAWorkerCannotResolveState() async throws {
        let context = TaskContext(uuid: "u", taskName: "step1")
        do {
            _ = try await context.state(MyState.self, from: .stateStore(MemoryStateStore()))
            Issue.record("expected an error")
        } catch let error as DependencyError {
            #expect(error.code == .unavailable)
            #expect(error.dependency == "state store")
        }
    }

    /// A task-scoped dependency's factory can build on the worker's State.
    @Test func factoriesResolveStateToo() async throws {
        let store = MemoryStateStore()
        let stateStore: Dependency<any StateStore> = .stateStore(store)
        let visits = Dependency<Int64>("visits") { resolver in
            try await resolver.state(MyState.self, key: resolver.context?.uuid, from: stateStore).increment("visits")
        }
        let app = TaskApp()
        try app.register("visit") { (context: TaskContext) -> Int64 in
            try await context.resolve(visits)
        }
        try await TestWorker.run(app, configuration: Self.quiet) { client, _ in
            let result = try await client.send("visit").result(timeout: .seconds(30))
            #expect(result.returning == 1, "\(result.traceback ?? "")")
        }
    }
}

/// The worker's State URL: `--state`, else `QTASKS_STATE_URL`, else an
/// SQLite file in the current directory.
@Suite("State URL for workers")
struct StateWorkerURLTests {
    @Test func explicitThenEnvironmentThenTheDefaultFile() {
        let environment = ["QTASKS_STATE_URL": "redis://127.0.0.1:6379/0"]
        #expect(StateStores.resolvedURL("memory://", environment: environment, directory: "/srv") == "memory://")
        #expect(StateStores.resolvedURL(nil, environment: environment, directory: "/srv") == "redis://127.0.0.1:6379/0")
        #expect(StateStores.resolvedURL(nil, environment: ["QTASKS_STATE_URL": ""], directory: "/srv") == "sqlite:///srv/.qtasks-state.db")
        #expect(StateStores.resolvedURL(nil, environment: [:], directory: "/srv/") == "sqlite:///srv/.qtasks-state.db")
    }

    @Test func theDefaultFileURLIsAbsoluteAndEncodedAndOpens() async throws {
        let base = try TemporaryDirectory()
        defer { base.remove() }
        let directory = base.path + "/with space, 100% ?odd#"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let url = StateStores.defaultURL(directory: directory)
        #expect(url.hasPrefix("sqlite:///"))
        #expect(!url.contains(" ") && !url.contains("?") && !url.contains("#"), "\(url)")
        try StateStores.validate(url: url)
        let store = try await StateStores.open(url: url)
        try await store.set("a", to: 1, in: StateID(namespace: "N"))
        await store.close()
        #expect(FileManager.default.fileExists(atPath: directory + "/.qtasks-state.db"))
    }

    @Test func validateRejectsWhatOpenRejectsWithoutOpening() throws {
        #expect(throws: StateError.self) { try StateStores.validate(url: "mysql://localhost/db") }
        #expect(throws: StateError.self) { try StateStores.validate(url: "not a url") }
        do {
            try StateStores.validate(url: "redis://:secret@host:6379/x")
            Issue.record("expected invalidURL")
        } catch {
            #expect(error.code == .invalidURL)
            #expect(!error.message.contains("secret"))
        }
        // Syntax only: nothing listens on port 1, and that is not checked.
        try StateStores.validate(url: "redis://127.0.0.1:1/0")
        try StateStores.validate(url: "memory://")
        try StateStores.validate(url: "sqlite:///nonexistent/dir/state.db")
    }
}

/// Forwards to a store and counts `close()` calls.
final class ClosingProbe: StateStore {
    let base: any StateStore
    private let closeCount = Atomic<Int>(0)

    init(_ base: any StateStore) { self.base = base }

    var closes: Int { closeCount.load(ordering: .relaxed) }

    func get(_ field: String, in state: StateID) async throws -> JSONValue? { try await base.get(field, in: state) }
    func getAll(in state: StateID) async throws -> [String: JSONValue] { try await base.getAll(in: state) }
    func update(_ fields: [String: JSONValue], in state: StateID, ttl: Duration?) async throws {
        try await base.update(fields, in: state, ttl: ttl)
    }
    func delete(_ field: String, in state: StateID) async throws { try await base.delete(field, in: state) }
    func clear(_ state: StateID) async throws { try await base.clear(state) }
    func modify<T: Sendable>(
        _ state: StateID, ttl: Duration?, _ body: @escaping @Sendable (inout [String: JSONValue]) throws -> T
    ) async throws -> T {
        try await base.modify(state, ttl: ttl, body)
    }
    func close() async {
        closeCount.add(1, ordering: .relaxed)
        await base.close()
    }
}
