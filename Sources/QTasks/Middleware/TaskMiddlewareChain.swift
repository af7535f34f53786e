/// The worker's middleware, composed: calls each hook of each middleware
/// in order around the worker's own step.
struct TaskMiddlewareChain: Sendable {
    let middleware: [any TaskMiddleware]

    func process(_ delivery: Delivery, core: (Delivery) async -> TaskReport) async -> TaskReport {
        await process(delivery, from: 0, core: core)
    }

    private func process(_ delivery: Delivery, from index: Int, core: (Delivery) async -> TaskReport) async -> TaskReport {
        guard index < middleware.count else { return await core(delivery) }
        return await middleware[index].process(delivery) { delivery in
            await process(delivery, from: index + 1, core: core)
        }
    }

    func run(_ context: TaskContext, core: (TaskContext) async throws -> JSONValue) async throws -> JSONValue {
        try await run(context, from: 0, core: core)
    }

    private func run(_ context: TaskContext, from index: Int, core: (TaskContext) async throws -> JSONValue) async throws -> JSONValue {
        guard index < middleware.count else { return try await core(context) }
        return try await middleware[index].run(context) { context in
            try await run(context, from: index + 1, core: core)
        }
    }
}
