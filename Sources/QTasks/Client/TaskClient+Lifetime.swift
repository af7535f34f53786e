import Logging
import ServiceLifecycle
import Tracing

extension TaskClient: Service {
    /// Runs until graceful shutdown (or cancellation), then closes the
    /// client: put it in a `ServiceGroup` after its broker, so that it is
    /// closed before the broker is.
    ///
    /// ```swift
    /// let broker = try RabbitMQBroker(url: url)
    /// let client = TaskClient(broker: broker)
    /// let group = ServiceGroup(services: [broker, client, myService], gracefulShutdownSignals: [.sigterm], logger: logger)
    /// ```
    public func run() async throws {
        // Either ends the wait: graceful shutdown returns, cancellation
        // throws; the client closes on both.
        try? await gracefulShutdown()
        await close()
    }

    /// Runs `body` with a new client and closes it on every exit path,
    /// after `body` returned or threw. The broker stays the caller's.
    ///
    /// ```swift
    /// let sum = try await TaskClient.withClient(broker: broker) { client in
    ///     try await client.send(Tasks.add, 2, 3).value(timeout: .seconds(5))
    /// }
    /// ```
    ///
    /// - Parameters: as ``init(broker:app:logger:tracer:publishRetry:batchWindow:middleware:)``.
    /// `body` runs on the caller's actor (the `isolation` parameter, left
    /// to its default), so it need not be `Sendable`: top-level code and
    /// `@MainActor` callers can use their own state in it.
    ///
    /// - Returns: what `body` returned.
    /// - Throws: what `body` threw.
    @discardableResult
    public static func withClient<Result>(
        broker: any Broker,
        app: TaskApp? = nil,
        logger: Logger = Logger(label: "qtasks.client"),
        tracer: (any Tracer)? = nil,
        publishRetry: PublishRetryPolicy = PublishRetryPolicy(),
        batchWindow: Int = 8192,
        middleware: [any TaskClientMiddleware] = [],
        resultStore: (any ResultStore)? = nil,
        isolation: isolated (any Actor)? = #isolation,
        _ body: (TaskClient) async throws -> Result
    ) async throws -> Result {
        let client = TaskClient(
            broker: broker, app: app, logger: logger, tracer: tracer, publishRetry: publishRetry,
            batchWindow: batchWindow, middleware: middleware, resultStore: resultStore)
        let result: Result
        do {
            result = try await body(client)
        } catch {
            await client.close()
            throw error
        }
        await client.close()
        return result
    }
}
