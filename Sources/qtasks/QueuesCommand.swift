import ArgumentParser

/// `qtasks queues …`: how the task queues are set up on the broker.
struct QueuesCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "queues",
        abstract: "Set up the broker side of task queues (their RabbitMQ policies).",
        discussion: """
            Workers and producers declare task queues durable and without arguments, so that Celery, \
            kombu, pika and Python QTasks can declare the same queues, in either order. What needs the \
            broker's help (dead-lettering what RabbitMQ drops itself to QUEUE.dlq, the delivery limit \
            of quorum queues) comes from one RabbitMQ policy per queue, qtasks.QUEUE, which `qtasks \
            queues policy apply` sets (docs/operations.md, "Queue policies").
            """,
        subcommands: [QueuePolicyCommand.self])
}
