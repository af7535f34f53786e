/// The `basic` content properties of an AMQP 0-9-1 message.
///
/// Every field is optional: an absent field is not sent. See RabbitMQ's
/// "Publishers" guide for how the broker reads each.
public struct AMQPProperties: Sendable, Hashable {
    public var contentType: String?
    public var contentEncoding: String?
    public var headers: AMQPTable?
    /// 1 = transient, 2 = persistent (written to disk by durable queues).
    public var deliveryMode: UInt8?
    /// 0...255; acted on only by priority queues (`x-max-priority`).
    public var priority: UInt8?
    public var correlationID: String?
    public var replyTo: String?
    /// Per-message TTL in milliseconds, as a decimal string (AMQP's format).
    public var expiration: String?
    public var messageID: String?
    /// Seconds since 1970.
    public var timestamp: UInt64?
    public var type: String?
    /// Checked by RabbitMQ against the connection's user when set.
    public var userID: String?
    public var appID: String?

    public init(
        contentType: String? = nil, contentEncoding: String? = nil, headers: AMQPTable? = nil,
        deliveryMode: UInt8? = nil, priority: UInt8? = nil, correlationID: String? = nil,
        replyTo: String? = nil, expiration: String? = nil, messageID: String? = nil,
        timestamp: UInt64? = nil, type: String? = nil, userID: String? = nil, appID: String? = nil
    ) {
        self.contentType = contentType
        self.contentEncoding = contentEncoding
        self.headers = headers
        self.deliveryMode = deliveryMode
        self.priority = priority
        self.correlationID = correlationID
        self.replyTo = replyTo
        self.expiration = expiration
        self.messageID = messageID
        self.timestamp = timestamp
        self.type = type
        self.userID = userID
        self.appID = appID
    }

    /// Delivery mode 2: the broker writes the message to disk on a durable
    /// queue.
    public static let persistentDeliveryMode: UInt8 = 2
    /// Delivery mode 1: kept in memory where possible.
    public static let transientDeliveryMode: UInt8 = 1
}
