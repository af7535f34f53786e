/// A message as a broker carries it: an opaque body and its properties.
///
/// The properties mirror AMQP 0-9-1's `basic` properties (see the RabbitMQ
/// "Publishers" guide); a broker that has no such field ignores it.
public struct Message: Sendable, Hashable {
    public var body: [UInt8]
    public var properties: MessageProperties

    public init(body: [UInt8], properties: MessageProperties = MessageProperties()) {
        self.body = body
        self.properties = properties
    }
}

/// AMQP 0-9-1 message properties, as plain Swift values.
public struct MessageProperties: Sendable, Hashable {
    /// MIME type of the body; tasks and results use `application/json`.
    public var contentType: String?
    public var contentEncoding: String?
    /// Persistent messages survive a broker restart (AMQP delivery mode 2).
    public var persistent: Bool
    /// AMQP priority, 0...255 (0...9 recommended by RabbitMQ). Only priority
    /// queues (`x-max-priority`) act on it.
    public var priority: UInt8?
    public var correlationID: String?
    /// The queue the result of this task goes to.
    public var replyTo: String?
    /// Per-message time-to-live in milliseconds, as a decimal string (AMQP
    /// `expiration`).
    public var expiration: String?
    public var messageID: String?
    /// Seconds since 1970 (AMQP `timestamp`, whole seconds).
    public var timestamp: UInt64?
    public var type: String?
    public var appID: String?
    public var headers: [String: HeaderValue]

    public init(
        contentType: String? = nil,
        contentEncoding: String? = nil,
        persistent: Bool = true,
        priority: UInt8? = nil,
        correlationID: String? = nil,
        replyTo: String? = nil,
        expiration: String? = nil,
        messageID: String? = nil,
        timestamp: UInt64? = nil,
        type: String? = nil,
        appID: String? = nil,
        headers: [String: HeaderValue] = [:]
    ) {
        self.contentType = contentType
        self.contentEncoding = contentEncoding
        self.persistent = persistent
        self.priority = priority
        self.correlationID = correlationID
        self.replyTo = replyTo
        self.expiration = expiration
        self.messageID = messageID
        self.timestamp = timestamp
        self.type = type
        self.appID = appID
        self.headers = headers
    }
}

/// A header value: the subset of AMQP field-table types that task
/// bookkeeping needs. Other AMQP types a foreign producer sends are mapped
/// to the nearest case by the broker (unsigned and narrower integers to
/// `.int`, `float` to `.double`, timestamps to `.int`, byte arrays to
/// `.bytes`, decimals to `.string`).
public enum HeaderValue: Sendable, Hashable {
    case bool(Bool)
    case int(Int64)
    case double(Double)
    case string(String)
    case bytes([UInt8])
    case array([HeaderValue])
    case table([String: HeaderValue])
    case void
}

/// A message received from a queue, owned by the consumer until acknowledged
/// or rejected through the broker that delivered it.
public struct Delivery: Sendable {
    public var message: Message
    /// The queue it was consumed from.
    public var queue: String
    /// True when the broker delivered this message before (to this or another
    /// consumer) without an acknowledgement.
    public var redelivered: Bool
    /// Broker-specific identity of this delivery (RabbitMQ: the delivery tag
    /// and the connection it belongs to). Opaque to the worker.
    public var token: DeliveryToken
    /// Set when the broker dropped the body unread because it was larger
    /// than its limit (so that a huge message never sits in memory): the
    /// size it announced, in bytes. `message.body` is then empty; the worker
    /// rejects the delivery without requeue, and the broker dead-letters the
    /// intact original.
    public var discardedBodySize: Int?
    /// When this process received the delivery (monotonic): the broker's
    /// delivery acknowledgement timeout (RabbitMQ's `consumer_timeout`)
    /// runs from about then, however long the delivery waits in the
    /// prefetch buffer before its task starts.
    public var receivedAt: ContinuousClock.Instant

    /// - Parameter receivedAt: when the broker handed it over; default now
    ///   (a broker makes the value as the delivery arrives).
    public init(
        message: Message, queue: String, redelivered: Bool, token: DeliveryToken, discardedBodySize: Int? = nil,
        receivedAt: ContinuousClock.Instant = .now
    ) {
        self.message = message
        self.queue = queue
        self.redelivered = redelivered
        self.token = token
        self.discardedBodySize = discardedBodySize
        self.receivedAt = receivedAt
    }
}

/// Identifies one delivery to the broker that made it.
public struct DeliveryToken: Sendable, Hashable {
    /// Which connection (or consumer session) the delivery belongs to; a
    /// broker refuses to acknowledge a token of an earlier connection.
    public var generation: UInt64
    /// The per-connection delivery number (AMQP delivery tag).
    public var tag: UInt64

    public init(generation: UInt64, tag: UInt64) {
        self.generation = generation
        self.tag = tag
    }
}
