import Logging
import QTasks
import ServiceLifecycle

extension RabbitMQBroker: Service {
    /// Connects (failing fast on a wrong URL or password), then holds the
    /// connections until graceful shutdown (or cancellation) and closes
    /// them. Put it first in a `ServiceGroup`: the group shuts services
    /// down in reverse order, so the workers and clients that use the
    /// broker have finished before it closes.
    ///
    /// ```swift
    /// let broker = try RabbitMQBroker(url: "amqp://guest:guest@127.0.0.1:5672/%2F")
    /// let worker = Worker(broker: broker, app: app)
    /// let group = ServiceGroup(services: [broker, worker], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
    /// try await group.run()
    /// ```
    ///
    /// - Throws: `BrokerError` when connecting fails.
    public func run() async throws {
        do {
            try await connect()
        } catch {
            await close()
            throw error
        }
        try? await gracefulShutdown()
        await close()
    }

    /// Connects a broker, runs `body` with it, and closes it on every exit
    /// path.
    ///
    /// ```swift
    /// try await RabbitMQBroker.withBroker(url: url) { broker in
    ///     try await TaskClient.withClient(broker: broker) { client in ... }
    /// }
    /// ```
    ///
    /// `body` runs on the caller's actor (the `isolation` parameter, left
    /// to its default), so it need not be `Sendable`: top-level code and
    /// `@MainActor` callers can use their own state in it.
    ///
    /// - Returns: what `body` returned.
    /// - Throws: `BrokerError` when connecting fails (a wrong URL or
    ///   password, no broker), else what `body` threw.
    @discardableResult
    public static func withBroker<Result>(
        configuration: RabbitMQBrokerConfiguration,
        logger: Logger = Logger(label: "qtasks.rabbitmq"),
        isolation: isolated (any Actor)? = #isolation,
        _ body: (RabbitMQBroker) async throws -> Result
    ) async throws -> Result {
        let broker = RabbitMQBroker(configuration: configuration, logger: logger)
        let result: Result
        do {
            try await broker.connect()
            result = try await body(broker)
        } catch {
            await broker.close()
            throw error
        }
        await broker.close()
        return result
    }

    /// ``withBroker(configuration:logger:_:)`` for a URL (or a `;`-separated
    /// list of cluster nodes): see ``RabbitMQBrokerConfiguration/init(url:)``.
    ///
    /// - Throws: `AMQPError` `.invalidArgument` for a URL that does not
    ///   parse (as ``RabbitMQBrokerConfiguration/init(url:)``), and what
    ///   ``withBroker(configuration:logger:_:)`` throws.
    @discardableResult
    public static func withBroker<Result>(
        url: String,
        logger: Logger = Logger(label: "qtasks.rabbitmq"),
        isolation: isolated (any Actor)? = #isolation,
        _ body: (RabbitMQBroker) async throws -> Result
    ) async throws -> Result {
        try await withBroker(configuration: try RabbitMQBrokerConfiguration(url: url), logger: logger, isolation: isolation, body)
    }
}
