/// The type of an exchange a ``RabbitMQBroker`` declares for a
/// ``QueueBinding``.
public struct ExchangeType: Sendable, Hashable, CustomStringConvertible {
    /// The `exchange.declare` type name.
    public let name: String
    private init(_ name: String) { self.name = name }

    /// Routes by exact routing key.
    public static let direct = ExchangeType("direct")
    /// Routes by routing-key pattern: `*` matches one dot-separated word,
    /// `#` zero or more (`orders.*`, `emails.#`).
    public static let topic = ExchangeType("topic")
    /// Copies every message to every bound queue.
    public static let fanout = ExchangeType("fanout")
    /// Routes by header values (binding arguments; not settable from the
    /// command line).
    public static let headers = ExchangeType("headers")

    /// Parses `direct`, `topic`, `fanout` or `headers`.
    public init?(name: String) {
        switch name {
        case "direct": self = .direct
        case "topic": self = .topic
        case "fanout": self = .fanout
        case "headers": self = .headers
        default: return nil
        }
    }

    public var description: String { name }
}
