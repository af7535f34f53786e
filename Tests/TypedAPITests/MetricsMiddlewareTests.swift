import MetricsTestKit
import QTasks
import Testing

/// The shipped metrics middleware, through a worker's own metrics factory
/// (no process-wide bootstrap).
@Suite(.timeLimit(.minutes(1)))
struct MetricsMiddlewareTests {
    @Test func outcomesAreCountedUnderTheTaskNamesTheWorkerRuns() async throws {
        let metrics = TestMetrics()
        let app = TaskApp()
        try app.register(Tasks.add) { a, b in a + b }
        var configuration = WorkerConfiguration(shutdownGracePeriod: .seconds(5))
        configuration.metricsFactory = metrics
        let broker = MemoryBroker()
        try await broker.declareTaskQueue("default")
        let worker = Worker(broker: broker, app: app, configuration: configuration)
        // Registered after the worker was made and before it runs: the
        // worker runs it, so its metrics must name it, not `unknown`.
        try app.register(Tasks.order) { (context: TaskContext, sku: String, quantity: Int) in
            guard sku != "none" else { throw OutOfStock(sku: sku) }
            return Receipt(sku: sku, quantity: quantity, total: 0)
        }
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await worker.run() }
            try await TaskClient.withClient(broker: broker) { client in
                _ = try await client.send(Tasks.add, 1, 2).value(timeout: .seconds(30))
                _ = try await client.send(Tasks.order, "fig", 1).value(timeout: .seconds(30))
                _ = try? await client.send(Tasks.order, "none", 1).value(timeout: .seconds(30))
                _ = try await client.send("nope", args: []).result(timeout: .seconds(30))
            }
            worker.triggerGracefulShutdown()
            try await group.waitForAll()
        }
        await broker.close()
        func count(_ label: String, _ task: String) throws -> Int64 {
            try metrics.expectCounter(label, [("task", task), ("queue", "default")]).totalValue
        }
        #expect(try count(WorkerMetrics.succeeded, "add") == 1)
        #expect(try count(WorkerMetrics.succeeded, "order") == 1)
        #expect(try count(WorkerMetrics.failed, "order") == 1)
        #expect(try count(WorkerMetrics.deadLettered, "order") == 1)
        #expect(try count(WorkerMetrics.received, "order") == 2)
        // A name no handler has is counted as unknown.
        #expect(try count(WorkerMetrics.failed, WorkerMetrics.unknownTask) == 1)
        #expect(try metrics.expectTimer(WorkerMetrics.duration, [("task", "add"), ("queue", "default")]).values.count == 1)
        #expect(try metrics.expectMeter(WorkerMetrics.inFlight).lastValue == 0)
    }
}
