import AMQP

/// How a ``RabbitMQBroker`` connects and declares its queues.
public struct RabbitMQBrokerConfiguration: Sendable {
    /// Where to connect; see `AMQPConfiguration(url:)` for the URL format.
    public var connection: AMQPConfiguration
    /// The most published messages awaiting a publisher confirm at once, per
    /// connection; further publishes wait in order.
    public var confirmWindow: Int = 1024
    /// Extra arguments for every task queue the broker declares, for example
    /// `["x-queue-type": "quorum"]` or `["x-max-priority": 10]`. The
    /// dead-letter arguments are always added (see ``RabbitMQBroker``).
    public var queueArguments: AMQPTable = [:]

    /// - Parameter url: an AMQP URL, `amqp://user:pass@host:port/vhost`.
    /// - Throws: `AMQPError` `.invalidArgument` for a malformed URL.
    public init(url: String) throws {
        self.connection = try AMQPConfiguration(url: url)
    }

    public init(connection: AMQPConfiguration = AMQPConfiguration()) {
        self.connection = connection
    }
}
