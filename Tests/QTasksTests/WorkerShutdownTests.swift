import QTasks
import Testing

@Suite struct WorkerShutdownTests {
    /// Runs a worker until `body` returns, then shuts it down gracefully and
    /// waits for `run()` to return.
    func withWorker(
        _ worker: Worker,
        _ body: () async throws -> Void
    ) async throws -> Duration {
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await worker.run() }
            try await body()
            let start = ContinuousClock.now
            worker.triggerGracefulShutdown()
            try await group.waitForAll()
            return ContinuousClock.now - start
        }
    }

    @Test func inFlightTasksFinishAndPrefetchedOnesAreRequeued() async throws {
        let probe = ConcurrencyProbe()
        let app = TaskApp()
        try app.register("work") { () async throws -> Int in
            probe.enter()
            defer { probe.leave() }
            try await Task.sleep(for: .milliseconds(300))
            return 1
        }
        let broker = MemoryBroker()
        try await broker.declareTaskQueue("default")
        for _ in 0..<6 {
            try await broker.publish(Message(body: Array(#"{"task_name":"work"}"#.utf8)), to: "default", mandatory: true)
        }
        let worker = Worker(broker: broker, app: app, configuration: quietConfiguration(concurrency: 2, prefetch: 6, shutdownGracePeriod: .seconds(60)))
        let elapsed = try await withWorker(worker) {
            #expect(await eventually { probe.started == 2 && broker.unackedCount == 6 })
        }
        #expect(probe.finished == 2, "in-flight tasks finish")
        #expect(probe.started == 2, "prefetched tasks do not start after shutdown")
        #expect(broker.unackedCount == 0)
        let requeued = broker.messages(in: "default")
        #expect(requeued.count == 4)
        #expect(broker.readyCount(in: "default.dlq") == 0)
        // It waited for the two 0.3 s tasks, not its 60 s grace period: the
        // bound is far from both, for a loaded machine (it was 5 s against
        // a 10 s grace period).
        #expect(elapsed < .seconds(30))
    }

    @Test func stragglersAreCancelledAndRequeuedAfterTheGracePeriod() async throws {
        let probe = ConcurrencyProbe()
        let app = TaskApp()
        try app.register("forever") { () async throws -> Int in
            probe.enter()
            defer { probe.leave() }
            try await Task.sleep(for: .seconds(60))
            return 1
        }
        let broker = MemoryBroker()
        try await broker.declareTaskQueue("default")
        for _ in 0..<3 {
            try await broker.publish(Message(body: Array(#"{"task_name":"forever"}"#.utf8)), to: "default", mandatory: true)
        }
        let worker = Worker(broker: broker, app: app, configuration: quietConfiguration(concurrency: 2, prefetch: 3, shutdownGracePeriod: .milliseconds(200)))
        let elapsed = try await withWorker(worker) {
            #expect(await eventually { probe.started == 2 && broker.unackedCount == 3 })
        }
        #expect(elapsed >= .milliseconds(150), "waits for the grace period")
        // Far below the tasks' 60 s: cancelled after the grace period, with
        // room for a loaded machine.
        #expect(elapsed < .seconds(30), "then cancels")
        #expect(probe.finished == 2, "stragglers were cancelled")
        #expect(broker.unackedCount == 0)
        #expect(broker.readyCount(in: "default") == 3, "nothing lost")
        #expect(broker.readyCount(in: "default.dlq") == 0)
    }

    @Test func idleWorkerStopsPromptly() async throws {
        let broker = MemoryBroker()
        let worker = Worker(broker: broker, app: TaskApp(), configuration: quietConfiguration(shutdownGracePeriod: .seconds(60)))
        let elapsed = try await withWorker(worker) {
            #expect(await eventually { broker.queueNames.contains("default") })
            try await Task.sleep(for: .milliseconds(20))
        }
        // Nothing runs, so it must not sit out its 60 s grace period.
        #expect(elapsed < .seconds(20))
    }

    @Test func shutdownBeforeRunReturnsWithoutWork() async throws {
        let broker = MemoryBroker()
        try await broker.declareTaskQueue("default")
        try await broker.publish(Message(body: Array(#"{"task_name":"x"}"#.utf8)), to: "default", mandatory: true)
        let worker = Worker(broker: broker, app: TaskApp(), configuration: quietConfiguration())
        worker.triggerGracefulShutdown()
        try await worker.run()
        #expect(broker.readyCount(in: "default") == 1)
        #expect(broker.unackedCount == 0)
    }

    @Test func lostConnectionMakesRunThrowWithoutReconnects() async throws {
        let broker = MemoryBroker()
        var configuration = quietConfiguration()
        configuration.reconnectAttempts = 0
        let worker = Worker(broker: broker, app: TaskApp(), configuration: configuration)
        await #expect(throws: BrokerError.self) {
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await worker.run() }
                #expect(await eventually { broker.queueNames.contains("default") })
                try await Task.sleep(for: .milliseconds(20))
                await broker.failConsumers(with: BrokerError(.connectionLost, "test: connection lost"))
                try await group.waitForAll()
            }
        }
    }

    @Test func lostConnectionIsFollowedByConsumingAgain() async throws {
        let broker = MemoryBroker()
        let app = TaskApp()
        try app.register("add") { (a: Int, b: Int) in a + b }
        var configuration = quietConfiguration()
        configuration.reconnectBackoff = Backoff(initial: .milliseconds(10), jitter: 0)
        let worker = Worker(broker: broker, app: app, configuration: configuration)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await worker.run() }
            #expect(await eventually { broker.queueNames.contains("default") })
            try await Task.sleep(for: .milliseconds(20))
            for _ in 0..<3 {
                await broker.failConsumers(with: BrokerError(.connectionLost, "test: connection lost"))
                try await Task.sleep(for: .milliseconds(30))
            }
            broker.declareQueue("replies")
            try await broker.publish(
                Message(body: Array(#"{"task_name": "add", "args": [2, 3]}"#.utf8), properties: MessageProperties(replyTo: "replies")),
                to: "default", mandatory: true)
            #expect(await eventually { broker.readyCount(in: "replies") == 1 })
            worker.triggerGracefulShutdown()
            try await group.waitForAll()
        }
        #expect(try TaskResult(jsonBytes: broker.messages(in: "replies")[0].body).returning == 5)
    }
}
