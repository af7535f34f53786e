import ArgumentParser
import QTasks
import QTasksRabbitMQ

/// The example worker's options for routing, per-queue concurrency and
/// priorities (docs/interop.md).
struct RoutingOptions: ParsableArguments {
    @Option(
        name: .customLong("bind"),
        help: ArgumentHelp(
            "Declare an exchange and bind a queue to it: [QUEUE=]EXCHANGE:TYPE:ROUTING_KEY, TYPE direct, topic or fanout (QUEUE defaults to the only --queue); repeat for several.",
            valueName: "binding"))
    var bindings: [String] = []

    @Option(
        name: .customLong("queue-concurrency"),
        help: ArgumentHelp(
            "A queue's own concurrency (also its prefetch): QUEUE=N, N 1...65535; repeat for several. --concurrency still bounds the total.",
            valueName: "queue=n"))
    var queueConcurrency: [String] = []

    @Option(help: "Make the task queues priority queues with this x-max-priority (1...255); producers must declare them alike.")
    var maxPriority: Int?

    /// Deprecated: every task queue is declared plain now (docs/interop.md).
    /// Still accepted so that existing command lines keep working; the
    /// worker warns once.
    @Option(
        name: .customLong("plain-queue"),
        help: ArgumentHelp(
            "Deprecated, no effect: every task queue is declared without dead-letter arguments now (dead-lettering comes from the queue's policy: qtasks queues policy apply).",
            valueName: "queue", visibility: .hidden))
    var plainQueues: [String] = []

    @Flag(
        name: .customLong("dramatiq-delay-queues"),
        help: ArgumentHelp(
            "Also consume Dramatiq's delay queue <queue>.DQ of each --queue: a message whose eta is still ahead waits in the broker's delay queues (none is held by the worker), then runs from <queue>. The worker declares <queue> and <queue>.DQ with Dramatiq's own arguments (dead-lettering to <queue>.XQ), so the worker or a Dramatiq producer may start first."))
    var dramatiqDelayQueues = false

    @Flag(
        name: .customLong("taskiq-queues"),
        help: ArgumentHelp(
            "Declare each --queue as taskiq-aio-pika 0.6.1 does: a quorum queue dead-lettering to Taskiq's dead-letter queue (declared too), bound to Taskiq's exchange with the queue's name as routing key; so that the worker or a Taskiq producer may start first."))
    var taskiqQueues = false

    @Option(
        name: .customLong("taskiq-exchange"),
        help: ArgumentHelp(
            "With --taskiq-queues: Taskiq's exchange as NAME[:TYPE] (its Exchange(name=..., type=...)), TYPE direct or topic.",
            valueName: "name[:type]"))
    var taskiqExchange = "taskiq:topic"

    @Option(
        name: .customLong("taskiq-dead-letter-queue"),
        help: ArgumentHelp(
            "With --taskiq-queues: Taskiq's dead-letter queue (its dead_letter_queue=Queue(name=...)).",
            valueName: "queue"))
    var taskiqDeadLetterQueue = "taskiq.dead_letter"

    func validate() throws {
        if let maxPriority, !(1...255).contains(maxPriority) {
            throw ValidationError("--max-priority must be 1...255")
        }
        if taskiqQueues {
            if dramatiqDelayQueues {
                throw ValidationError("--taskiq-queues and --dramatiq-delay-queues declare the same queues with different arguments: choose one (or run one worker per producer's queues)")
            }
            if maxPriority != nil {
                throw ValidationError("--taskiq-queues declares quorum queues, which refuse --max-priority")
            }
            _ = try taskiqDeclaration()
        }
        _ = try parsedQueueConcurrency()
    }

    /// The bindings, with `queues` (the worker's) for the default queue.
    func parsedBindings(queues: [String]) throws -> [QueueBinding] {
        try bindings.map { text in
            do {
                return try QueueBinding(parsing: text, defaultQueue: queues.count == 1 ? queues[0] : nil)
            } catch let error as QueueBindingError {
                throw ValidationError("--bind: \(error.message)")
            }
        }
    }

    func parsedQueueConcurrency() throws -> [String: Int] {
        var limits: [String: Int] = [:]
        for text in queueConcurrency {
            guard let equals = text.lastIndex(of: "="), let limit = Int(text[text.index(after: equals)...]),
                (1...WorkerConfiguration.longestPrefetch).contains(limit), equals != text.startIndex
            else {
                throw ValidationError(
                    "--queue-concurrency must be QUEUE=N with N 1...\(WorkerConfiguration.longestPrefetch) (it is also the queue's prefetch), not '\(text)'")
            }
            limits[String(text[..<equals])] = limit
        }
        return limits
    }

    func apply(to configuration: inout RabbitMQBrokerConfiguration, queues: [String]) throws {
        configuration.maxPriority = maxPriority
        configuration.bindings = try parsedBindings(queues: queues)
        if dramatiqDelayQueues {
            // Declared as Dramatiq declares them, so that the worker or a
            // Dramatiq producer may come first (docs/interop.md).
            for queue in queues {
                configuration.argumentsByQueue[queue] = RabbitMQBrokerConfiguration.dramatiqQueueArguments(for: queue)
            }
        }
        if taskiqQueues {
            // As taskiq-aio-pika's startup() declares them, so that its
            // declaration, coming second, is equivalent (docs/interop.md).
            let declaration = try taskiqDeclaration()
            for queue in queues { configuration.declareLikeTaskiq(queue, declaration) }
        }
    }

    /// `--taskiq-exchange` and `--taskiq-dead-letter-queue`.
    func taskiqDeclaration() throws -> TaskiqDeclaration {
        let parts = taskiqExchange.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false)
        let name = String(parts[0])
        let typeName = parts.count > 1 ? String(parts[1]) : "topic"
        guard !name.isEmpty else {
            throw ValidationError("--taskiq-exchange needs a name (taskiq-aio-pika cannot publish to the default exchange), not '\(taskiqExchange)'")
        }
        guard let type = ExchangeType(name: typeName), type == .direct || type == .topic else {
            throw ValidationError("--taskiq-exchange type must be direct or topic (what taskiq-aio-pika routes by), not '\(typeName)'")
        }
        guard !taskiqDeadLetterQueue.isEmpty else { throw ValidationError("--taskiq-dead-letter-queue must not be empty") }
        return TaskiqDeclaration(exchange: name, exchangeType: type, deadLetterQueue: taskiqDeadLetterQueue)
    }

    func apply(to configuration: inout WorkerConfiguration) throws {
        configuration.queueConcurrency = try parsedQueueConcurrency()
    }
}
