/// A message delivered to a consumer (`basic.deliver`) or fetched with
/// `basic.get`.
///
/// The delivery tag is only meaningful on ``channel``: acknowledge through
/// ``ack(multiple:)`` and friends, which refuse a tag whose channel has
/// closed since (``AMQPError/Code/staleDeliveryTag``).
public struct AMQPDelivery: Sendable {
    public let channel: AMQPChannel
    public let consumerTag: String
    public let deliveryTag: UInt64
    public let redelivered: Bool
    public let exchange: String
    public let routingKey: String
    public let properties: AMQPProperties
    /// The body; empty when ``bodyDiscarded``.
    public let body: [UInt8]
    /// The body size the message's content header announced, in bytes.
    public let bodySize: UInt64
    /// True when the body was over the consumer's `maxBodySize`: it was
    /// read off the socket and dropped, never held in memory, and ``body``
    /// is empty. Reject the delivery (without requeue, to dead-letter it).
    public let bodyDiscarded: Bool

    init(
        channel: AMQPChannel, consumerTag: String, deliveryTag: UInt64, redelivered: Bool, exchange: String,
        routingKey: String, properties: AMQPProperties, body: [UInt8], bodySize: UInt64? = nil, bodyDiscarded: Bool = false
    ) {
        self.channel = channel
        self.consumerTag = consumerTag
        self.deliveryTag = deliveryTag
        self.redelivered = redelivered
        self.exchange = exchange
        self.routingKey = routingKey
        self.properties = properties
        self.body = body
        self.bodySize = bodySize ?? UInt64(body.count)
        self.bodyDiscarded = bodyDiscarded
    }

    /// Acknowledges this delivery (`basic.ack`).
    public func ack(multiple: Bool = false) async throws {
        try await channel.ack(deliveryTag: deliveryTag, multiple: multiple)
    }

    /// Rejects this delivery (`basic.nack`); with `requeue` the broker
    /// delivers it again, otherwise it is dropped or dead-lettered.
    public func nack(multiple: Bool = false, requeue: Bool) async throws {
        try await channel.nack(deliveryTag: deliveryTag, multiple: multiple, requeue: requeue)
    }

    /// Rejects this delivery (`basic.reject`).
    public func reject(requeue: Bool) async throws {
        try await channel.reject(deliveryTag: deliveryTag, requeue: requeue)
    }
}
