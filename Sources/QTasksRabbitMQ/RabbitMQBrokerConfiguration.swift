import Foundation
import AMQP
import QTasks

/// How a ``RabbitMQBroker`` connects and declares its queues.
public struct RabbitMQBrokerConfiguration: Sendable {
    /// Where to connect; see `AMQPConfiguration(url:)` for the URL format.
    /// The first of ``endpoints``.
    public var connection: AMQPConfiguration
    /// Other nodes of the same cluster, for failover: when a connection is
    /// opened (at start and after each loss) the endpoints are tried one
    /// after the other until one accepts: the first connect from
    /// ``connection`` on, a reconnect from the endpoint after the lost one.
    /// Each try is bounded by its `connectTimeout`. Default none.
    /// Usually written as a `;`-separated list in the URL
    /// (``init(url:)``).
    public var failoverConnections: [AMQPConfiguration] = []

    /// ``connection`` then ``failoverConnections``: every endpoint, in the
    /// order a first connect tries them.
    public var endpoints: [AMQPConfiguration] { [connection] + failoverConnections }

    /// Every endpoint's URL with its password replaced by `***`, joined by
    /// `;` as ``init(url:)`` reads them: safe for logs.
    public var redactedURL: String { endpoints.map(\.redactedURL).joined(separator: ";") }
    /// The most published messages awaiting a publisher confirm at once, per
    /// connection; further publishes wait in order.
    public var confirmWindow: Int = 1024
    /// Extra arguments for every task queue the broker declares, for example
    /// `["x-queue-type": "quorum"]` or `["x-max-priority": 10]`. Default
    /// none, and best left so: every producer that declares the queue must
    /// then declare the same arguments, or RabbitMQ refuses whichever
    /// declaration comes second (406). Dead-lettering and delivery limits
    /// come from the queue's policy instead (``TaskQueuePolicy``).
    public var queueArguments: AMQPTable = [:]
    /// Arguments of particular task queues, by name, over
    /// ``queueArguments``: to declare a queue exactly as a foreign
    /// producer declares it (Dramatiq: ``dramatiqQueueArguments(for:)``),
    /// so that either may come first.
    public var argumentsByQueue: [String: AMQPTable] = [:]
    /// Queues declared (durable, with these arguments, by name) before the
    /// task queues and not consumed: a foreign producer's own dead-letter
    /// queue that a task queue's `x-dead-letter-routing-key` names
    /// (Taskiq's `taskiq.dead_letter`: ``declareLikeTaskiq(_:_:)``), so
    /// that what RabbitMQ dead-letters has somewhere to go before that
    /// producer ever started, and the producer's own declaration of it is
    /// equivalent. Default none. One that exists with other arguments is
    /// used as it is.
    public var companionQueues: [String: AMQPTable] = [:]

    /// The arguments Dramatiq 2.x's `RabbitmqBroker` declares `queue` with
    /// (`dramatiq/brokers/rabbitmq.py`, `_build_queue_arguments`): its
    /// messages dead-lettered to `<canonical queue>.XQ`. For `<queue>` and
    /// `<queue>.DQ` alike.
    public static func dramatiqQueueArguments(for queue: String) -> AMQPTable {
        let canonical = queue.hasSuffix(".DQ") ? String(queue.dropLast(3)) : queue
        return ["x-dead-letter-exchange": .string(""), "x-dead-letter-routing-key": .string(canonical + ".XQ")]
    }
    /// The type of the task queues and their dead-letter queues. Default
    /// ``QueueType/classic`` (no `x-queue-type` argument); an `x-queue-type`
    /// in ``queueArguments`` wins. A quorum queue is declared with
    /// `x-queue-type: quorum`, which its producers must declare too (Celery:
    /// `task_default_queue_type = "quorum"`), unless the virtual host's
    /// default queue type is quorum: then leave this classic, and every
    /// plain declaration makes, and matches, a quorum queue
    /// (docs/interop.md).
    public var queueType: QueueType = .classic
    /// Quorum queues only: a message delivered this many times without
    /// being settled (each worker that took it died or lost its connection)
    /// is dead-lettered by RabbitMQ to `<queue>.dlq` instead of being
    /// delivered again. Default 5; nil for no limit. Requeues by the worker
    /// itself (shutdown, lost publish) count too. Not a queue argument: it
    /// is the `delivery-limit` of the queue's ``TaskQueuePolicy``, which
    /// ``taskQueuePolicy(for:)`` builds from it.
    public var deliveryLimit: Int? = 5
    /// Task message bodies larger than this, in bytes, are read off the
    /// socket and dropped without being held in memory; the worker rejects
    /// them without requeue (error result; RabbitMQ dead-letters the intact
    /// original through the queue's ``TaskQueuePolicy``, with its `x-death`
    /// header but none of the worker's `x-qtasks-*` ones; without the
    /// policy RabbitMQ drops it). Bodies up to this size and over the worker's
    /// `maxMessageBytes` are read, and dead-lettered by the worker with its
    /// headers. This bounds the memory one delivery can take. Default
    /// 16 MiB; nil: no limit.
    public var maxMessageBytes: Int? = 16 * 1_048_576
    /// Makes every task queue a priority queue: declared with
    /// `x-max-priority` set to this (1...255; RabbitMQ advises at most 10).
    /// Default nil: no priorities. A `TaskClient` on this broker maps a
    /// QTasks priority `p` (lower runs first) to the AMQP priority
    /// `max(0, min(maxPriority, maxPriority - p))` (`PriorityMapping`).
    /// Producers and workers must agree on it: a queue declared with
    /// another value is used as it is (see ``RabbitMQBroker``).
    public var maxPriority: Int?
    /// Formerly the task queues declared without dead-letter arguments, so
    /// that producers that declare them plain could come second. Every
    /// task queue is declared so now; ignored.
    @available(*, deprecated, message: "every task queue is declared plain now; dead-lettering comes from TaskQueuePolicy")
    public var plainQueues: Set<String> = []
    /// How long a worker waits before it declares and consumes again one
    /// of its queues that the broker refused or took away while the
    /// connection lives on (the queue deleted, `404 NOT_FOUND`, `405
    /// RESOURCE_LOCKED` by another connection's exclusive queue, the
    /// consumer's channel closed): each queue has its own consumer channel
    /// and its own count of failures in a row, so the other queues are
    /// served meanwhile. Default: 1 s, doubling, at most 15 s, 20 %
    /// jitter. A lost connection is the worker's
    /// `WorkerConfiguration.reconnectBackoff` instead.
    public var queueRetryBackoff: Backoff = Backoff(initial: .seconds(1), multiplier: 2, maximum: .seconds(15), jitter: 0.2)
    /// Exchanges and bindings declared together with their queue (a worker
    /// declares its queues on start and after each reconnect), for routing
    /// by key through a direct or topic exchange. Default none.
    public var bindings: [QueueBinding] = []

    /// - Parameter url: an AMQP URL, `amqp://user:pass@host:port/vhost`, or
    ///   several separated by `;` for the nodes of a cluster
    ///   (`amqp://u:p@node1:5672/%2F;amqp://u:p@node2:5672/%2F`): the
    ///   first is ``connection``, the others ``failoverConnections``. The
    ///   separator is Celery's (kombu's failover `broker_url`). A `;` that
    ///   is not followed by `scheme://` belongs to the URL before it, so a
    ///   raw `;` in a password still parses (writing it `%3B` is clearer).
    /// - Throws: `AMQPError` `.invalidArgument` for a malformed URL or an
    ///   empty entry in a list, naming its position; the message shows the
    ///   URL with its password replaced by `***`.
    public init(url: String) throws {
        try self.init(urls: Self.splitList(url))
    }

    /// `url1;url2` split before each `;` that starts another URL (or an
    /// empty entry): the pieces of a password that held a `;` stay together.
    package static func splitList(_ text: String) -> [String] {
        var entries: [String] = []
        for piece in text.split(separator: ";", omittingEmptySubsequences: false) {
            let trimmed = piece.trimmingCharacters(in: .whitespacesAndNewlines)
            let startsURL = trimmed.isEmpty || trimmed.range(of: "^[A-Za-z][A-Za-z0-9+.-]*://", options: .regularExpression) != nil
            if !startsURL, let last = entries.last, !last.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty {
                entries[entries.count - 1] = last + ";" + piece
            } else {
                entries.append(String(piece))
            }
        }
        return entries
    }

    /// - Parameter urls: AMQP URLs of the nodes of one cluster, in the order
    ///   they are tried (see ``failoverConnections``); at least one.
    /// - Throws: `AMQPError` `.invalidArgument` for an empty list, an empty
    ///   or malformed URL (naming its position when there are several).
    public init(urls: [String]) throws {
        guard !urls.isEmpty else { throw AMQPError(.invalidArgument, "no broker URL given") }
        var parsed: [AMQPConfiguration] = []
        for (index, url) in urls.enumerated() {
            let position = urls.count > 1 ? "broker URL \(index + 1) of \(urls.count)" : "broker URL"
            let url = url.trimmingCharacters(in: .whitespacesAndNewlines)
            guard !url.isEmpty else {
                throw AMQPError(.invalidArgument, "\(position) is empty")
            }
            do {
                parsed.append(try AMQPConfiguration(url: url))
            } catch var error as AMQPError where urls.count > 1 {
                error.message = "\(position): \(error.message)"
                throw error
            }
        }
        self.connection = parsed[0]
        self.failoverConnections = Array(parsed.dropFirst())
    }

    /// The policy that gives `queue` its dead-letter route and, for
    /// ``QueueType/quorum``, its delivery limit (``deliveryLimit``), for a
    /// queue of the type it is declared with (its ``argumentsByQueue``,
    /// else ``queueArguments``, else ``queueType``).
    public func taskQueuePolicy(for queue: String) -> TaskQueuePolicy {
        let declared = argumentsByQueue[queue]?["x-queue-type"] ?? queueArguments["x-queue-type"]
        let type = declared.flatMap { if case .string(let name) = $0 { QueueType(name: name) } else { nil } }
        return TaskQueuePolicy(queue: queue, queueType: type ?? queueType, deliveryLimit: deliveryLimit)
    }

    public init(connection: AMQPConfiguration = AMQPConfiguration()) {
        self.connection = connection
    }
}
