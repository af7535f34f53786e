import QTasks

/// What RabbitMQ said when it refused to redeclare an existing queue with
/// other arguments, and what that means for the worker's protections.
///
/// RabbitMQ answers such a `queue.declare` with `406 PRECONDITION_FAILED`
/// and names the first argument that differs, in one of these shapes
/// (RabbitMQ 3.10 to 4.x, `rabbit_misc:assert_args_equivalence`):
///
/// ```
/// PRECONDITION_FAILED - inequivalent arg 'x-queue-type' for queue 'q' in vhost '/':
///     received none but current is the value 'quorum' of type 'longstr'
/// PRECONDITION_FAILED - inequivalent arg 'x-queue-type' for queue 'q' in vhost '/':
///     received 'classic' but current is 'quorum'
/// PRECONDITION_FAILED - inequivalent arg 'x-dead-letter-exchange' for queue 'q' in vhost '/':
///     received the value '' of type 'longstr' but current is none
/// ```
///
/// Only the first difference is named: AMQP has no way to read a queue's
/// arguments (the management API does: `qtasks inspect`, or `GET
/// /api/queues/{vhost}/{name}`).
public struct QueueArgumentConflict: Sendable, Hashable {
    /// The argument, e.g. `x-dead-letter-exchange`; `durable`,
    /// `exclusive` or `auto_delete` for a flag.
    public var argument: String
    /// The queue's value as RabbitMQ printed it; nil when the queue has none.
    public var current: String?
    /// What the declaration asked for; nil for none.
    public var received: String?

    public init(argument: String, current: String?, received: String?) {
        self.argument = argument
        self.current = current
        self.received = received
    }

    /// Reads RabbitMQ's reply text; nil when it is not an "inequivalent
    /// arg" refusal.
    public init?(replyText: String) {
        guard let start = replyText.range(of: "inequivalent arg '") else { return nil }
        let rest = replyText[start.upperBound...]
        guard let end = rest.firstIndex(of: "'") else { return nil }
        argument = String(rest[..<end])
        guard let receivedStart = rest.range(of: ": received ") else { return nil }
        let values = rest[receivedStart.upperBound...]
        guard let split = values.range(of: " but current is ") else { return nil }
        received = Self.value(values[..<split.lowerBound])
        current = Self.value(values[split.upperBound...])
    }

    /// `none` → nil; `the value 'x' of type 't'` or `'x'` → `x`.
    private static func value(_ text: Substring) -> String? {
        var text = text
        if text.hasPrefix("none") { return nil }
        if text.hasPrefix("the value ") { text = text.dropFirst("the value ".count) }
        guard text.hasPrefix("'") else { return String(text) }
        text = text.dropFirst()
        if let typed = text.range(of: "' of type '", options: .backwards) { return String(text[..<typed.lowerBound]) }
        if let close = text.lastIndex(of: "'") { return String(text[..<close]) }
        return String(text)
    }

    /// One sentence for the log line: what the queue as it is provides or
    /// lacks compared with what the worker would have set up. `queue` is
    /// the queue's name, `policy` the name of its ``TaskQueuePolicy``.
    public func protectionNote(queue: String, policy: String) -> String {
        let deadLetters = QueueNaming.deadLetterQueue(for: queue)
        let found = current.map { "'\($0)'" } ?? "none"
        switch argument {
        case "x-queue-type":
            if current == QueueType.quorum.name {
                return "a quorum queue: it counts deliveries; its delivery limit and dead-letter route come from the policy \(policy) (qtasks queues policy apply) unless its own arguments set them"
            }
            if current == nil || current == QueueType.classic.name {
                return "a classic queue, not the \(received ?? "requested") type asked for: no delivery counting, a message that kills its worker is delivered again for ever (docs/reliability.md, Poison messages)"
            }
            return "a queue of type \(found): the worker consumes it as it is"
        case "x-dead-letter-exchange", "x-dead-letter-routing-key":
            if current == nil {
                return "no \(argument) of its own: what RabbitMQ drops goes where the policy \(policy) says (\(deadLetters) once applied)"
            }
            return "the queue dead-letters by its own arguments (\(argument) \(found); arguments win over the policy \(policy)): what RabbitMQ drops (rejected oversize bodies, delivery limits) goes there, not to \(deadLetters); the worker still publishes its own failures to \(deadLetters)"
        case "x-delivery-limit":
            return current == nil
                ? "no x-delivery-limit of its own: the policy \(policy) sets it, on quorum queues"
                : "its own delivery limit \(found) (the lower of it and the policy's applies)"
        case "x-max-priority":
            return current == nil
                ? "not a priority queue: priorities sent to it are ignored"
                : "a priority queue with x-max-priority \(found): the priority mapping follows the worker's --max-priority \(received ?? "none"), which may not fit"
        case "durable", "exclusive", "auto_delete":
            return "the queue's \(argument) flag is \(found): it may not survive a broker restart as a task queue should"
        default:
            return "an argument of its owner, \(argument) \(found): the worker does not depend on it"
        }
    }
}
