/// A step a ``TaskClient`` runs on every task it sends, before publishing:
/// to add headers (a tenant, an auth token, a trace of one's own), to route
/// (change the queue) or to refuse a send (throw).
///
/// The client runs its middleware in the order given, once per task (not
/// again when a lost publish is retried); the trace context is injected
/// after them, so `traceparent` cannot be overwritten by mistake.
///
/// ```swift
/// struct TenantHeader: TaskClientMiddleware {
///     let tenant: String
///     func willSend(_ task: inout OutgoingTask) async throws {
///         task.headers["x-tenant"] = .string(tenant)
///     }
/// }
/// let client = TaskClient(broker: broker, middleware: [TenantHeader(tenant: "acme")])
/// ```
public protocol TaskClientMiddleware: Sendable {
    /// Adjusts (or refuses, by throwing) a task about to be published.
    ///
    /// - Throws: any error: the send fails with it, nothing is published.
    func willSend(_ task: inout OutgoingTask) async throws
}

/// A task about to be published, as a ``TaskClientMiddleware`` sees it.
public struct OutgoingTask: Sendable {
    /// The task's uuid (its `message_id` and `correlation_id`).
    public let uuid: String
    /// The `task_name`.
    public let taskName: String
    /// The queue it is published to (default exchange, this routing key).
    public var queue: String
    /// The QTasks priority (lower runs first); nil means 0.
    public var priority: Int?
    /// AMQP headers of the message. Names starting `x-qtasks-` are the
    /// worker's bookkeeping (docs/wire-format.md): leave them alone.
    public var headers: [String: HeaderValue]
}
