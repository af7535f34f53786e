/// The worker's middleware, composed: calls each hook of each middleware
/// in order around the worker's own step.
struct TaskMiddlewareChain: Sendable {
    let middleware: [any TaskMiddleware]
    /// The middleware whose ``TaskMiddleware/run(_:next:)`` may do
    /// something: the package's own that only wrap whole deliveries are
    /// left out, rather than called through three pass-through async hooks
    /// per task (a percent of a no-op task's CPU). Order is kept.
    private let runners: [any TaskMiddleware]

    init(middleware: [any TaskMiddleware]) {
        self.middleware = middleware
        self.runners = middleware.filter { !($0 is any DeliveryOnlyTaskMiddleware) }
    }

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
        guard index < runners.count else { return try await core(context) }
        return try await runners[index].run(context) { context in
            try await run(context, from: index + 1, core: core)
        }
    }
}

/// A middleware of this package whose ``TaskMiddleware/run(_:next:)`` is
/// the default (it only calls `next`): the chain does not call it. A type
/// of another module cannot change that witness, so the mark stays true.
protocol DeliveryOnlyTaskMiddleware: TaskMiddleware {}

extension TracingTaskMiddleware: DeliveryOnlyTaskMiddleware {}
extension LoggingTaskMiddleware: DeliveryOnlyTaskMiddleware {}
extension MetricsTaskMiddleware: DeliveryOnlyTaskMiddleware {}
