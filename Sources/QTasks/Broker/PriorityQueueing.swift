/// A broker whose task queues may be priority queues (RabbitMQ's
/// `x-max-priority`): a ``TaskClient`` asks it how to turn a QTasks
/// priority into the message's AMQP priority (``PriorityMapping``).
public protocol PriorityQueueing: Broker {
    /// The highest AMQP priority `queue` acts on (its `x-max-priority`), as
    /// this broker declares it; nil when it is not a priority queue.
    func maxPriority(forQueue queue: String) -> Int?
}
