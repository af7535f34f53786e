/// The kind of RabbitMQ queue a ``RabbitMQBroker`` declares for tasks
/// (RabbitMQ's `x-queue-type`).
public struct QueueType: Sendable, Hashable, CustomStringConvertible {
    /// The queue-type argument value.
    public let name: String
    private init(_ name: String) { self.name = name }

    /// A classic queue: RabbitMQ's default. It does not count deliveries,
    /// so a message that kills every worker that takes it is redelivered
    /// for ever (see docs/reliability.md).
    public static let classic = QueueType("classic")
    /// A quorum queue (replicated, Raft): counts deliveries, so with a
    /// delivery limit a poison message is dead-lettered after that many
    /// deliveries.
    public static let quorum = QueueType("quorum")

    /// Parses `classic` or `quorum`.
    public init?(name: String) {
        switch name {
        case "classic": self = .classic
        case "quorum": self = .quorum
        default: return nil
        }
    }

    public var description: String { name }
}
