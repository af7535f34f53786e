import QTasks

/// Runs a ``Worker`` over a ``MemoryBroker`` for the length of a test.
///
/// ```swift
/// let app = TaskApp()
/// try app.register(Tasks.add) { a, b in a + b }
/// try await TestWorker.run(app) { client, broker in
///     #expect(try await client.send(Tasks.add, 2, 3).value(timeout: .seconds(5)) == 5)
/// }
/// ```
public enum TestWorker {
    /// Starts a worker for `app`, runs `body` with a client on the same
    /// broker, then shuts the worker down gracefully and closes the client
    /// and the broker.
    ///
    /// - Parameters:
    ///   - configuration: the worker's configuration; its `queues` are
    ///     declared before `body` runs. The client traces with its
    ///     ``WorkerConfiguration/tracer`` too.
    ///   - broker: pass one to inspect it afterwards; it is closed at the end.
    ///   - isolation: the caller's actor, where `body` runs (so it need
    ///     not be `Sendable`); leave the default.
    /// - Returns: what `body` returns.
    /// - Throws: what `body` throws, else what the worker's `run()` threw.
    public static func run<Result: Sendable>(
        _ app: TaskApp,
        configuration: WorkerConfiguration = WorkerConfiguration(shutdownGracePeriod: .seconds(5)),
        broker: MemoryBroker = MemoryBroker(),
        isolation: isolated (any Actor)? = #isolation,
        _ body: (TaskClient, MemoryBroker) async throws -> Result
    ) async throws -> Result {
        for queue in configuration.queues {
            try await broker.declareTaskQueue(queue)
        }
        let worker = Worker(broker: broker, app: app, configuration: configuration)
        let client = TaskClient(broker: broker, tracer: configuration.tracer)
        return try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await worker.run() }
            let outcome: Swift.Result<Result, any Error>
            do {
                outcome = .success(try await body(client, broker))
            } catch {
                outcome = .failure(error)
            }
            await client.close()
            worker.triggerGracefulShutdown()
            let workerError: (any Error)?
            do {
                try await group.waitForAll()
                workerError = nil
            } catch {
                workerError = error
            }
            await broker.close()
            let value = try outcome.get()
            if let workerError { throw workerError }
            return value
        }
    }
}
