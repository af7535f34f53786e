import Foundation
import QTasks
import QTasksTesting
import Synchronization
import Testing

/// Depends on a running worker (MemoryBroker): worker scope, concurrency,
/// shutdown.
@Suite struct DependsWorkerTests {
    @Test func workerScopedDependencyIsSetUpOnceFor1000ConcurrentTasksAndTornDownOnceAtShutdown() async throws {
        let tasks = 1000
        let setups = Atomic<Int>(0)
        let teardowns = Mutex<[(outcome: String, finishedTasks: Int)]>([])
        let finished = Atomic<Int>(0)
        let pool = Dependency<FakeResource>("pool", scope: .worker) { _ in
            setups.add(1, ordering: .relaxed)
            // Slow, so that every task asks while the creation is in flight.
            try await Task.sleep(for: .milliseconds(100))
            return .value(FakeResource("pool", openedBy: nil), teardown: { _, outcome in
                let done = finished.load(ordering: .relaxed)
                teardowns.withLock { $0.append((outcome.label, done)) }
            })
        }
        let gate = Gate(count: tasks)
        let app = TaskApp()
        try app.register("use_pool") { (context: TaskContext) -> Int in
            defer { finished.add(1, ordering: .relaxed) }
            // All tasks resolve at the same moment.
            try await gate.arriveAndWait()
            return try await context.resolve(pool).id
        }
        let configuration = WorkerConfiguration(concurrency: tasks, prefetch: tasks, shutdownGracePeriod: .seconds(30), logger: quietLogger)
        let ids = try await withDeadline(.seconds(60)) {
            try await TestWorker.run(app, configuration: configuration) { client, _ in
                var handles: [TaskHandle<JSONValue>] = []
                for _ in 0..<tasks {
                    handles.append(try await client.send("use_pool"))
                }
                var ids: Set<JSONValue?> = []
                for handle in handles {
                    let result = try await handle.result(timeout: .seconds(30))
                    #expect(result.status == .success, "\(result.traceback ?? "")")
                    ids.insert(result.returning)
                }
                #expect(teardowns.withLock { $0.isEmpty }, "not torn down while the worker runs")
                return ids
            }
        }
        #expect(ids.count == 1, "every task got the same instance")
        #expect(setups.load(ordering: .relaxed) == 1, "exactly one setup")
        let recorded = teardowns.withLock { $0 }
        #expect(recorded.count == 1, "exactly one teardown")
        #expect(recorded.first?.outcome == "shutdown")
        #expect(recorded.first?.finishedTasks == tasks, "torn down after the tasks finished")
    }

    @Test func concurrentTaskScopedInstancesAreClosedOnceByTheirOwnCall() async throws {
        let tasks = 100
        let registry = ResourceRegistry()
        let log = EventLog()
        let session = loggedResource("session", log: log, registry: registry)
        let gate = Gate(count: tasks)
        let app = TaskApp()
        try app.register("use_session") { (context: TaskContext) -> [String: JSONValue] in
            let resource = try await context.resolve(session)
            // Everyone holds an open session at the same time.
            try await gate.arriveAndWait()
            let again = try await context.resolve(session)
            return ["id": .int(Int64(resource.id)), "same": .bool(resource === again)]
        }
        let configuration = WorkerConfiguration(concurrency: tasks, shutdownGracePeriod: .seconds(30), logger: quietLogger)
        let results = try await withDeadline(.seconds(60)) {
            try await TestWorker.run(app, configuration: configuration) { client, _ in
                var handles: [TaskHandle<JSONValue>] = []
                for _ in 0..<tasks {
                    handles.append(try await client.send("use_session"))
                }
                var results: [TaskResult] = []
                for handle in handles {
                    results.append(try await handle.result(timeout: .seconds(30)))
                }
                return results
            }
        }
        let resources = registry.all
        #expect(resources.count == tasks, "one instance per call")
        for resource in resources {
            #expect(resource.closedBy.count == 1, "instance \(resource.id) closed \(resource.closedBy.count) times")
            #expect(resource.closedBy.first == resource.openedBy, "instance \(resource.id) closed by another call")
            #expect(resource.outcomes == ["success"])
        }
        // Each call used the instance its own factory made.
        let byID = Dictionary(uniqueKeysWithValues: resources.map { ($0.id, $0) })
        for result in results {
            #expect(result.status == .success)
            guard case .object(let fields)? = result.returning, case .int(let id)? = fields["id"] else {
                Issue.record("unexpected result \(result)")
                continue
            }
            #expect(fields["same"] == true)
            #expect(byID[Int(id)]?.openedBy == result.uuid)
        }
        #expect(Set(results.compactMap(\.returning)).count == tasks)
    }

    @Test func workerScopedDependenciesAreTornDownInReverseOrderAtShutdown() async throws {
        let log = EventLog()
        let settings = loggedResource("settings", scope: .worker, log: log)
        let pool = loggedResource("pool", scope: .worker, log: log, needs: [settings])
        let metrics = loggedResource("metrics", scope: .worker, log: log)
        let app = TaskApp()
        try app.register("work") { (context: TaskContext) in
            _ = try await context.resolve(pool)
            _ = try await context.resolve(metrics)
            log.record("handler")
        }
        try await TestWorker.run(app, configuration: quietConfiguration()) { client, _ in
            for _ in 0..<3 {
                let result = try await client.send("work").result(timeout: .seconds(30))
                #expect(result.status == .success)
            }
        }
        #expect(log.all == [
            "setup settings", "setup pool", "setup metrics", "handler", "handler", "handler",
            "teardown metrics shutdown", "teardown pool shutdown", "teardown settings shutdown",
        ])
    }

    @Test func workerTimeLimitFailsTheTaskAndTearsDown() async throws {
        let log = EventLog()
        let db = loggedResource("db", log: log)
        let app = TaskApp()
        try app.register("slow") { (context: TaskContext) in
            _ = try await context.resolve(db)
            try await Task.sleep(for: .seconds(60))
        }
        var configuration = quietConfiguration()
        configuration.taskTimeLimit = .milliseconds(200)
        let result = try await TestWorker.run(app, configuration: configuration) { client, broker in
            let result = try await client.send("slow").result(timeout: .seconds(30))
            #expect(await eventually { broker.readyCount(in: "default.dlq") == 1 })
            return result
        }
        #expect(result.status == .error)
        #expect(result.traceback == "TaskTimeLimitError: task 'slow' exceeded its time limit of 0.2 s")
        #expect(log.all == ["setup db", "teardown db error:task 'slow' exceeded its time limit of 0.2 s"])
    }

    @Test func tasksCancelledAtShutdownAreTornDownAndRequeued() async throws {
        let log = EventLog()
        let started = EventLog()
        let db = loggedResource("db", log: log)
        let app = TaskApp()
        try app.register("forever") { (context: TaskContext) in
            _ = try await context.resolve(db)
            started.record("started")
            try await Task.sleep(for: .seconds(60))
        }
        let broker = MemoryBroker()
        try await broker.declareTaskQueue("default")
        try await broker.publish(Message(body: Array(#"{"task_name":"forever"}"#.utf8)), to: "default", mandatory: true)
        let worker = Worker(broker: broker, app: app, configuration: quietConfiguration(shutdownGracePeriod: .milliseconds(100)))
        try await withDeadline {
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await worker.run() }
                #expect(await eventually { started.count("started") == 1 })
                worker.triggerGracefulShutdown()
                try await group.waitForAll()
            }
        }
        #expect(log.all == ["setup db", "teardown db cancelled"])
        #expect(broker.readyCount(in: "default") == 1, "requeued")
    }
}
