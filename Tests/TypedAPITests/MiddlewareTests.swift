import QTasks
import QTasksTesting
import Testing

/// Records each hook it passes, in and out, under its name.
private struct Tracing: TaskMiddleware {
    let name: String
    let log: Recorder<String>

    func process(_ delivery: Delivery, next: (Delivery) async -> TaskReport) async -> TaskReport {
        await log.append("\(name).process>")
        let report = await next(delivery)
        await log.append("<\(name).process \(report.status) settled=\(report.isSettled)")
        return report
    }

    func run(_ context: TaskContext, next: (TaskContext) async throws -> JSONValue) async throws -> JSONValue {
        await log.append("\(name).run>")
        let value = try await next(context)
        await log.append("<\(name).run")
        return value
    }
}

/// Answers `add` from a cache without running it, for messages that carry
/// a header `x-cached`; refuses messages without a tenant.
private struct CacheAndTenant: TaskMiddleware {
    func run(_ context: TaskContext, next: (TaskContext) async throws -> JSONValue) async throws -> JSONValue {
        guard context.properties.headers["x-tenant"] != nil else {
            throw NoTenant()
        }
        if case .string(let cached)? = context.properties.headers["x-cached"] {
            return .string(cached)
        }
        return try await next(context)
    }
}

private struct NoTenant: Error, CustomStringConvertible {
    var description: String { "the message names no tenant" }
}

/// A database transaction around each handler: begun before it, committed
/// after a success, rolled back after a failure.
private struct Transaction: TaskMiddleware {
    let log: Recorder<String>

    func run(_ context: TaskContext, next: (TaskContext) async throws -> JSONValue) async throws -> JSONValue {
        await log.append("begin \(context.taskName)")
        do {
            let value = try await next(context)
            await log.append("commit")
            return value
        } catch {
            await log.append("rollback")
            throw error
        }
    }
}

/// Adds a tenant header, and routes `order` tasks to the queue `orders`.
private struct TenantAndRouting: TaskClientMiddleware {
    func willSend(_ task: inout OutgoingTask) async throws {
        task.headers["x-tenant"] = .string("acme")
        if task.taskName == "order" { task.queue = "orders" }
    }
}

private struct RefuseAll: TaskClientMiddleware {
    func willSend(_ task: inout OutgoingTask) async throws {
        throw NoTenant()
    }
}

@Suite(.timeLimit(.minutes(1)))
struct MiddlewareTests {
    @Test func middlewareRunsInTheOrderGivenAroundTheHandler() async throws {
        let log = Recorder<String>()
        let app = TaskApp()
        try app.register(Tasks.add) { a, b in
            await log.append("handler")
            return a + b
        }
        var configuration = WorkerConfiguration(shutdownGracePeriod: .seconds(5))
        configuration.middleware = [Tracing(name: "A", log: log), Tracing(name: "B", log: log)]
        try await TestWorker.run(app, configuration: configuration) { client, _ in
            let sum = try await client.send(Tasks.add, 1, 2).value(timeout: .seconds(30))
            #expect(sum == 3)
        }
        let entries = await log.values
        #expect(entries == [
            "A.process>", "B.process>", "A.run>", "B.run>", "handler", "<B.run", "<A.run",
            "<B.process success settled=true", "<A.process success settled=true",
        ])
    }

    @Test func theInitializersMiddlewareRunsInsideTheConfigurations() async throws {
        let log = Recorder<String>()
        let app = TaskApp()
        try app.register(Tasks.ping) { "pong" }
        var configuration = WorkerConfiguration(shutdownGracePeriod: .seconds(5))
        configuration.middleware = [Tracing(name: "outer", log: log)]
        let broker = MemoryBroker()
        try await broker.declareTaskQueue("default")
        let transactions = ["ping"]
        let worker = Worker(broker: broker, app: app, configuration: configuration) {
            Tracing(name: "inner", log: log)
            if transactions.contains("ping") { Transaction(log: log) }
        }
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await worker.run() }
            try await TaskClient.withClient(broker: broker) { client in
                let answer = try await client.send(Tasks.ping).value(timeout: .seconds(30))
                #expect(answer == "pong")
            }
            worker.triggerGracefulShutdown()
            try await group.waitForAll()
        }
        await broker.close()
        let entries = await log.values
        #expect(entries == [
            "outer.process>", "inner.process>", "outer.run>", "inner.run>", "begin ping", "commit", "<inner.run",
            "<outer.run", "<inner.process success settled=true", "<outer.process success settled=true",
        ])
    }

    @Test func aMiddlewareShortCircuitsOrRefusesATask() async throws {
        let ran = Recorder<Int>()
        let app = TaskApp()
        try app.register(Tasks.add) { a, b in
            await ran.append(a + b)
            return a + b
        }
        var configuration = WorkerConfiguration(shutdownGracePeriod: .seconds(5))
        configuration.middleware = [CacheAndTenant()]
        try await TestWorker.run(app, configuration: configuration) { _, broker in
            try await TaskClient.withClient(broker: broker, middleware: [TenantAndRouting()]) { client in
                let sum = try await client.send(Tasks.add, 2, 2).value(timeout: .seconds(30))
                #expect(sum == 4)
            }
            // A cached answer: the handler does not run, the task succeeds
            // with the middleware's value.
            struct Cached: TaskClientMiddleware {
                func willSend(_ task: inout OutgoingTask) async throws {
                    task.headers["x-tenant"] = .string("acme")
                    task.headers["x-cached"] = .string("40")
                }
            }
            try await TaskClient.withClient(broker: broker, middleware: [Cached()]) { client in
                let result = try await client.send(Tasks.add, 20, 20).result(timeout: .seconds(30))
                #expect(result.status == .success)
                #expect(result.returning == "40")
            }
            // No tenant: refused as if the handler had thrown.
            try await TaskClient.withClient(broker: broker) { client in
                let error = await #expect(throws: TaskFailedError.self) {
                    _ = try await client.send(Tasks.add, 1, 1).value(timeout: .seconds(30))
                }
                #expect(error?.errorType == "NoTenant")
                #expect(error?.message == "the message names no tenant")
            }
        }
        #expect(await ran.values == [4])
    }

    @Test func aTransactionWrapsEachHandlerAndRollsBackOnFailure() async throws {
        let log = Recorder<String>()
        let app = try makeApp()
        var configuration = WorkerConfiguration(shutdownGracePeriod: .seconds(5))
        configuration.middleware = [Transaction(log: log)]
        try await TestWorker.run(app, configuration: configuration) { client, _ in
            _ = try await client.send(Tasks.order, "pear", 2).value(timeout: .seconds(30))
            await #expect(throws: TaskFailedError.self) {
                _ = try await client.send(Tasks.order, "none", 2).value(timeout: .seconds(30))
            }
        }
        #expect(await log.values == ["begin order", "commit", "begin order", "rollback"])
    }

    @Test func aClientMiddlewareAddsHeadersAndRoutes() async throws {
        let app = TaskApp()
        try app.register(Tasks.order) { (context: TaskContext, sku: String, quantity: Int) in
            guard case .string(let tenant)? = context.properties.headers["x-tenant"] else { throw NoTenant() }
            return Receipt(sku: "\(tenant)/\(context.queue)/\(sku)", quantity: quantity, total: 0)
        }
        var configuration = WorkerConfiguration(shutdownGracePeriod: .seconds(5))
        configuration.queues = ["orders"]
        try await TestWorker.run(app, configuration: configuration) { _, broker in
            try await TaskClient.withClient(broker: broker, middleware: [TenantAndRouting()]) { client in
                let handle = try await client.send(Tasks.order, "fig", 1)
                #expect(handle.queue == "orders")
                #expect(try await handle.value(timeout: .seconds(30)).sku == "acme/orders/fig")
            }
        }
    }

    @Test func aClientMiddlewareThatThrowsRefusesTheSend() async throws {
        let broker = MemoryBroker()
        try await TaskClient.withClient(broker: broker, middleware: [RefuseAll()]) { client in
            await #expect(throws: NoTenant.self) {
                _ = try await client.send(Tasks.add, 1, 2)
            }
        }
        #expect(broker.publishedCount == 0)
        await broker.close()
    }
}
