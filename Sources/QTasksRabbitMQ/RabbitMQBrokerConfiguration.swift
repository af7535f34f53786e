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
    /// Makes every task queue a priority queue: declared with
    /// `x-max-priority` set to this (1...255; RabbitMQ advises at most 10).
    /// Default nil: no priorities. A ``TaskClient`` on this broker maps a
    /// QTasks priority `p` (lower runs first) to the AMQP priority
    /// `max(0, min(maxPriority, maxPriority - p))` (``PriorityMapping``).
    /// Producers and workers must agree on it: a queue declared with
    /// another value is used as it is (see ``RabbitMQBroker``).
    public var maxPriority: Int?
    /// Task queues that other producers declare themselves, with no
    /// arguments: they get no dead-letter arguments and no delivery limit,
    /// only `x-max-priority` (``maxPriority``) and `x-queue-type` (a
    /// ``queueType`` other than classic). Declared like that, both orders
    /// work: the foreign producer's own declaration matches ours. The
    /// worker still dead-letters failures to `<queue>.dlq` itself; only
    /// bodies over ``maxMessageBytes`` (dropped unread and rejected) are
    /// lost there, unless a policy sets a dead-letter exchange. Default:
    /// Celery's default queue `celery` and Python QTasks' default
    /// `QueueTasks:task_queue` (docs/interop.md).
    public var plainQueues: Set<String> = ["celery", "QueueTasks:task_queue"]
    /// Exchanges and bindings declared together with their queue (a worker
    /// declares its queues on start and after each reconnect), for routing
    /// by key through a direct or topic exchange. Default none.
    public var bindings: [QueueBinding] = []

    /// - Parameter url: an AMQP URL, `amqp://user:pass@host:port/vhost`.
    /// - Throws: `AMQPError` `.invalidArgument` for a malformed URL.
    public init(url: String) throws {
        self.connection = try AMQPConfiguration(url: url)
    }

    public init(connection: AMQPConfiguration = AMQPConfiguration()) {
        self.connection = connection
    }
}
