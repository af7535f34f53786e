/// A message to publish in a batch (``AMQPChannel/publish(batch:)``).
public struct AMQPOutgoingMessage: Sendable, Hashable {
    /// The body, as bytes.
    public var body: [UInt8]
    /// The exchange; `""` is the default exchange, which routes by queue name.
    public var exchange: String
    /// The routing key (with the default exchange: the queue's name).
    public var routingKey: String
    /// Whether the broker must return the message when no queue takes it
    /// (`basic.return`; the publish then fails with `.publishReturned`).
    public var mandatory: Bool
    public var properties: AMQPProperties

    public init(
        _ body: [UInt8], exchange: String = "", routingKey: String, mandatory: Bool = false,
        properties: AMQPProperties = AMQPProperties()
    ) {
        self.body = body
        self.exchange = exchange
        self.routingKey = routingKey
        self.mandatory = mandatory
        self.properties = properties
    }
}
