/// A step the ``Worker`` runs around every task: an onion, in the order
/// the middleware was given (the first is outermost). Both hooks have a
/// default that only calls `next`, so a middleware implements what it
/// needs.
///
/// - ``process(_:next:)`` wraps everything the worker does with one
///   delivery: reading it, running its task, publishing its result and
///   settling it (ack, requeue, dead letter). Its ``TaskReport`` says how
///   that went. It cannot skip the work: a report only comes from `next`.
///   For what observes whole deliveries: metrics, spans, audit records,
///   log lines (the package's own are middlewares of this kind).
/// - ``run(_:next:)`` wraps the handler call, after the message was
///   decoded and inside the task's time limit and dependency scope. It may
///   short-circuit (return a value without calling `next`: the task
///   succeeds with it; throw: the task fails as if the handler threw, and
///   its retry policy decides), or wrap the handler in a resource (a
///   database transaction, a lock, a rate limit).
///
/// ```swift
/// struct Audit: TaskMiddleware {
///     func process(_ delivery: Delivery, next: (Delivery) async -> TaskReport) async -> TaskReport {
///         let report = await next(delivery)
///         await auditLog.record(report.result.uuid, report.result.status)
///         return report
///     }
/// }
///
/// struct RequireTenant: TaskMiddleware {
///     func run(_ context: TaskContext, next: (TaskContext) async throws -> JSONValue) async throws -> JSONValue {
///         guard case .string? = context.properties.headers["x-tenant"] else {
///             throw NonRetryableError(MissingTenant())
///         }
///         return try await next(context)
///     }
/// }
///
/// let worker = Worker(broker: broker, app: app, configuration: configuration) {
///     Audit()
///     RequireTenant()
/// }
/// ```
public protocol TaskMiddleware: Sendable {
    /// Wraps the whole processing of one delivery.
    ///
    /// - Parameters:
    ///   - delivery: the delivery as received (or as an outer middleware
    ///     passed it on).
    ///   - next: the rest of the chain and the worker's own processing;
    ///     call it exactly once.
    /// - Returns: the report `next` returned.
    func process(_ delivery: Delivery, next: (Delivery) async -> TaskReport) async -> TaskReport

    /// Wraps the handler call of one task.
    ///
    /// - Parameters:
    ///   - context: the task's context (uuid, name, attempt, arguments,
    ///     message properties, dependencies).
    ///   - next: the rest of the chain and the handler.
    /// - Returns: the task's return value, as JSON (`returning`).
    /// - Throws: what fails the task: `next`'s error, or one of the
    ///   middleware's own.
    func run(_ context: TaskContext, next: (TaskContext) async throws -> JSONValue) async throws -> JSONValue
}

extension TaskMiddleware {
    public func process(_ delivery: Delivery, next: (Delivery) async -> TaskReport) async -> TaskReport {
        await next(delivery)
    }

    public func run(_ context: TaskContext, next: (TaskContext) async throws -> JSONValue) async throws -> JSONValue {
        try await next(context)
    }
}
