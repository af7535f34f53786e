import AMQP

/// How taskiq-aio-pika 0.6.1's `AioPikaBroker` declares a task queue, so
/// that a worker can declare it the same way first and a Taskiq producer
/// started afterwards finds everything equivalent.
///
/// taskiq-aio-pika's `startup()` (`taskiq_aio_pika/broker.py`,
/// `_declare_exchanges`, `_declare_dead_letter_queue`, `_declare_queues`,
/// with the defaults of its `Exchange` and `Queue` dataclasses) declares:
///
/// - the exchange `taskiq`, type `topic`, durable;
/// - the dead-letter queue `taskiq.dead_letter`: durable,
///   `x-queue-type: quorum`;
/// - each task queue: durable, `x-dead-letter-exchange: ""`,
///   `x-dead-letter-routing-key: <dead-letter queue>`,
///   `x-queue-type: quorum`;
/// - a binding of each task queue to the exchange, routing key = the
///   queue's name.
///
/// A queue declared otherwise (plainly, by a worker that came first)
/// makes that `startup()` fail with `406 PRECONDITION_FAILED -
/// inequivalent arg 'x-dead-letter-exchange'`. Apply it to a
/// configuration with ``RabbitMQBrokerConfiguration/declareLikeTaskiq(_:_:)``.
///
/// Not covered: a Taskiq `Queue` with its own `max_priority`, `arguments`
/// or `type` (declare it with the producer first; the worker then uses it
/// as it is), and Taskiq's delay queue (`delay_queue=`), which only its
/// producer publishes to and declares.
public struct TaskiqDeclaration: Sendable, Hashable {
    /// The exchange Taskiq publishes to: its `Exchange(name=...)`, default
    /// `taskiq`.
    public var exchange: String
    /// Its `Exchange(type=...)`, default `topic`.
    public var exchangeType: ExchangeType
    /// Its `dead_letter_queue=Queue(name=...)`, default
    /// `taskiq.dead_letter`: where RabbitMQ dead-letters what the task
    /// queue rejects or drops (the worker still publishes its own failures
    /// to `<queue>.dlq`).
    public var deadLetterQueue: String

    /// taskiq-aio-pika's defaults: exchange `taskiq`, topic; dead-letter
    /// queue `taskiq.dead_letter`.
    public init(exchange: String = "taskiq", exchangeType: ExchangeType = .topic, deadLetterQueue: String = "taskiq.dead_letter") {
        self.exchange = exchange
        self.exchangeType = exchangeType
        self.deadLetterQueue = deadLetterQueue
    }

    /// A task queue's arguments as taskiq-aio-pika declares them (its
    /// `Queue` default type, quorum).
    public var queueArguments: AMQPTable {
        [
            "x-dead-letter-exchange": .string(""),
            "x-dead-letter-routing-key": .string(deadLetterQueue),
            "x-queue-type": .string(QueueType.quorum.name),
        ]
    }

    /// The dead-letter queue's arguments: a quorum queue, nothing else.
    public var deadLetterQueueArguments: AMQPTable {
        ["x-queue-type": .string(QueueType.quorum.name)]
    }

    /// The binding taskiq-aio-pika makes for `queue`: to ``exchange``,
    /// routing key the queue's name (what its `kick` publishes with).
    public func binding(for queue: String) -> QueueBinding {
        QueueBinding(queue: queue, exchange: exchange, exchangeType: exchangeType, routingKey: queue)
    }
}

extension RabbitMQBrokerConfiguration {
    /// Declares `queue` as taskiq-aio-pika 0.6.1 would (``TaskiqDeclaration``):
    /// its arguments (over ``queueArguments`` and ``queueType``), its
    /// dead-letter queue (in ``companionQueues``) and its binding to the
    /// Taskiq exchange (in ``bindings``). Then the worker or a Taskiq
    /// producer may start first.
    public mutating func declareLikeTaskiq(_ queue: String, _ declaration: TaskiqDeclaration = TaskiqDeclaration()) {
        argumentsByQueue[queue] = declaration.queueArguments
        companionQueues[declaration.deadLetterQueue] = declaration.deadLetterQueueArguments
        let binding = declaration.binding(for: queue)
        if !bindings.contains(binding) { bindings.append(binding) }
    }
}
