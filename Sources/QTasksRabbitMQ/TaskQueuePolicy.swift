import QTasks

/// The RabbitMQ policy that gives one task queue the protections that need
/// the broker's help, so that the queue itself can be declared plain.
///
/// A queue declared with arguments (`x-dead-letter-exchange`,
/// `x-delivery-limit`) refuses every later declaration without them with
/// `406 PRECONDITION_FAILED - inequivalent arg`, and Celery, kombu, pika and
/// Python QTasks all declare their queues durable and without arguments.
/// A policy gives a queue the same settings without being part of its
/// declaration, so either side may declare first (RabbitMQ's "Policies"
/// guide, https://www.rabbitmq.com/docs/policies, and "Dead Letter
/// Exchanges", https://www.rabbitmq.com/docs/dlx: "can also be specified
/// using policies", the recommended way).
///
/// The policy of quorum queue `orders`:
///
/// ```
/// name      qtasks.orders
/// pattern   ^orders$               (the name alone: not orders.dlq, not orders.retry.<ms>)
/// apply-to  queues
/// priority  10
/// definition {"dead-letter-exchange": "", "dead-letter-routing-key": "orders.dlq",
///             "delivery-limit": 5}
/// ```
///
/// - `dead-letter-exchange` `""` and `dead-letter-routing-key`
///   `<queue>.dlq`: what RabbitMQ drops itself (a body over the worker's
///   broker-side limit, read unread and rejected; a quorum queue's delivery
///   limit) goes to the worker's dead-letter queue, through the default
///   exchange, whatever exchange and routing key the message came with.
/// - `delivery-limit`, for a quorum queue only: a message returned that
///   many times unsettled is dead-lettered instead of delivered again.
///   Never in a classic queue's policy: RabbitMQ does not apply a policy
///   that holds a key the queue's type does not support (checked with
///   3.10: the classic queue then has no policy at all, so no dead-letter
///   route either). The policy must therefore follow the queue's actual
///   type, which `qtasks queues policy apply` reads from the management API
///   when the queue exists.
///
/// Only one policy applies to a queue: the matching one with the highest
/// priority (ties: unspecified). An operator policy of one's own that
/// matches a task queue must then carry these keys too, or have a lower
/// priority. Queue arguments win over a policy's dead-letter keys (and the
/// lower delivery limit wins): a queue declared by another tool with its
/// own `x-dead-letter-exchange` keeps it (see ``QueueArgumentConflict``).
public struct TaskQueuePolicy: Sendable, Hashable {
    /// The priority our policies get: above RabbitMQ's default of 0, so
    /// that a catch-all policy (`.*`) an operator set without a priority
    /// does not take the task queues' protections away.
    public static let defaultPriority = 10

    /// The task queue it protects.
    public var queue: String
    /// `qtasks.<queue>`.
    public var name: String
    /// A regular expression (Erlang's `re`, PCRE) that matches the queue's
    /// name and nothing else.
    public var pattern: String
    /// RabbitMQ's `apply-to`: always `queues` (classic and quorum).
    public var applyTo: String { "queues" }
    public var priority: Int
    /// The queue's type: decides whether the policy may hold
    /// `delivery-limit`.
    public var queueType: QueueType
    /// `x-delivery-limit`'s policy twin, for a quorum queue; nil: no limit
    /// set by the policy (RabbitMQ's own default then applies: none before
    /// 4.0, 20 since). Ignored for a classic queue.
    public var deliveryLimit: Int?

    /// - Parameters:
    ///   - queue: the task queue.
    ///   - queueType: the queue's type as it is (or will be) on the broker.
    ///   - deliveryLimit: unsettled deliveries before a quorum queue
    ///     dead-letters a message; nil for none. RabbitMQ takes 0 and up.
    ///   - priority: the policy's priority.
    public init(queue: String, queueType: QueueType, deliveryLimit: Int?, priority: Int = Self.defaultPriority) {
        self.queue = queue
        self.name = Self.name(forQueue: queue)
        self.pattern = Self.pattern(matchingOnly: queue)
        self.queueType = queueType
        self.priority = priority
        self.deliveryLimit = deliveryLimit
    }

    /// `qtasks.<queue>`: one policy per task queue, named after it, so that
    /// `rabbitmqctl list_policies` says which queue each one is for.
    public static func name(forQueue queue: String) -> String { "qtasks.\(queue)" }

    /// `^<queue>$` with every ASCII character but letters, digits and `_`
    /// escaped by a backslash (PCRE: a backslash before a non-alphanumeric
    /// character makes it literal). Other bytes (UTF-8) are literal as
    /// they are.
    public static func pattern(matchingOnly queue: String) -> String {
        var escaped = "^"
        for scalar in queue.unicodeScalars {
            if scalar.isASCII && !(scalar.properties.isAlphabetic || ("0"..."9").contains(scalar) || scalar == "_") {
                escaped.append("\\")
            }
            escaped.unicodeScalars.append(scalar)
        }
        return escaped + "$"
    }

    /// The policy's definition, as RabbitMQ stores it.
    public var definition: [String: JSONValue] {
        var definition: [String: JSONValue] = [
            "dead-letter-exchange": "",
            "dead-letter-routing-key": .string(QueueNaming.deadLetterQueue(for: queue)),
        ]
        if queueType == .quorum, let deliveryLimit { definition["delivery-limit"] = .int(Int64(deliveryLimit)) }
        return definition
    }

    /// The keys of ``definition`` that `effective` (a queue's
    /// `effective_policy_definition` in the management API) lacks or sets
    /// otherwise, sorted; empty when the policy is in force. Numbers
    /// compare by value (`5` and `5.0` are the same).
    public func keysNotInForce(in effective: [String: JSONValue]) -> [String] {
        definition.filter { key, value in effective[key] != value }.map(\.key).sorted()
    }

    /// The arguments of `rabbitmqctl set_policy` that make this policy
    /// (for a broker without the management plugin), one per element:
    /// `["set_policy", "--vhost", "/", "--priority", "10", "--apply-to",
    /// "queues", "qtasks.orders", "^orders$", "{…}"]`.
    public func rabbitmqctlArguments(virtualHost: String) -> [String] {
        [
            "set_policy", "--vhost", virtualHost, "--priority", String(priority), "--apply-to", applyTo, name, pattern,
            definitionJSON,
        ]
    }

    /// ``definition`` as compact JSON with sorted keys.
    public var definitionJSON: String { JSONValue.object(definition).description }
}
