/// An error from a ``Broker``.
///
/// `code` says what kind of failure it is; `replyCode` and `replyText` carry
/// the broker's own words where it gave any (for RabbitMQ the AMQP reply code
/// and text, for example `403` and `ACCESS_REFUSED - Login was refused ...`).
public struct BrokerError: Error, Sendable, CustomStringConvertible {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Base: String { case connectionFailed, connectionLost, refused, unroutable, nacked, staleDelivery, closed, timeout, messageTooLarge }
        private let base: Base
        private init(_ base: Base) { self.base = base }
        /// The broker could not be reached or refused the connection.
        public static let connectionFailed = Code(.connectionFailed)
        /// An established connection was lost.
        public static let connectionLost = Code(.connectionLost)
        /// The broker refused an operation (a channel or connection error).
        public static let refused = Code(.refused)
        /// A mandatory message matched no queue.
        public static let unroutable = Code(.unroutable)
        /// The broker negatively acknowledged a published message.
        public static let nacked = Code(.nacked)
        /// The delivery belongs to an earlier connection and can no longer be
        /// acknowledged; the broker redelivers it.
        public static let staleDelivery = Code(.staleDelivery)
        /// The broker was closed by this process.
        public static let closed = Code(.closed)
        /// An operation did not complete in time.
        public static let timeout = Code(.timeout)
        /// The broker refused a message larger than its maximum message
        /// size (RabbitMQ's `max_message_size`: a 406 that closes the
        /// channel), or the message is larger than a limit the broker
        /// already named, so it was not sent. Sending it again fails again.
        public static let messageTooLarge = Code(.messageTooLarge)
        public var description: String { base.rawValue }
    }

    public var code: Code
    public var message: String
    public var replyCode: UInt16?
    public var replyText: String?
    /// For ``Code/messageTooLarge``: the broker's maximum message size in
    /// bytes, when the broker said what it is.
    public var maxMessageBytes: Int?

    public init(
        _ code: Code, _ message: String, replyCode: UInt16? = nil, replyText: String? = nil, maxMessageBytes: Int? = nil
    ) {
        self.code = code
        self.message = message
        self.replyCode = replyCode
        self.replyText = replyText
        self.maxMessageBytes = maxMessageBytes
    }

    public var description: String {
        if let replyCode, let replyText { return "\(message): \(replyCode) \(replyText)" }
        return message
    }
}
