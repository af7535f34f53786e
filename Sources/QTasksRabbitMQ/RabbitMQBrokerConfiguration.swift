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
    /// The type of the task queues and their dead-letter queues. Default
    /// ``QueueType/classic``; an `x-queue-type` in ``queueArguments`` wins.
    public var queueType: QueueType = .classic
    /// Quorum queues only: a message delivered this many times without
    /// being settled (each worker that took it died or lost its connection)
    /// is dead-lettered by RabbitMQ to `<queue>.dlq` instead of being
    /// delivered again (`x-delivery-limit`). Default 5; nil for no limit.
    /// Requeues by the worker itself (shutdown, lost publish) count too.
    public var deliveryLimit: Int? = 5
    /// Task message bodies larger than this, in bytes, are read off the
    /// socket and dropped without being held in memory; the worker rejects
    /// them without requeue (error result; RabbitMQ dead-letters the intact
    /// original, with its `x-death` header but none of the worker's
    /// `x-qtasks-*` ones). Bodies up to this size and over the worker's
    /// `maxMessageBytes` are read, and dead-lettered by the worker with its
    /// headers. This bounds the memory one delivery can take. Default
    /// 16 MiB; nil: no limit.
    public var maxMessageBytes: Int? = 16 * 1_048_576

    /// - Parameter url: an AMQP URL, `amqp://user:pass@host:port/vhost`.
    /// - Throws: `AMQPError` `.invalidArgument` for a malformed URL.
    public init(url: String) throws {
        self.connection = try AMQPConfiguration(url: url)
    }

    public init(connection: AMQPConfiguration = AMQPConfiguration()) {
        self.connection = connection
    }
}
