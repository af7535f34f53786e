/// An error from the AMQP layer.
///
/// `code` says what kind of failure it is. When the broker closed the
/// connection or a channel, `replyCode` and `replyText` carry its reply (AMQP
/// 0-9-1 reply codes, for example `403` with `ACCESS_REFUSED - Login was
/// refused using authentication mechanism PLAIN...`, `404 NOT_FOUND - no queue
/// 'x' in vhost '/'`, `530 NOT_ALLOWED - vhost x not found`). When rabbitmq-c
/// reported a library or socket failure, `libraryStatus` carries its status
/// code and the message carries `amqp_error_string2`'s text.
public struct AMQPError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The kind of failure. New codes may be added: switch with a default.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Base: String, Hashable, Sendable {
            case invalidArgument, connectionFailed, authenticationFailed, connectionClosed,
                channelClosed, timeout, heartbeatTimeout, protocolError, publishNacked,
                publishReturned, staleDeliveryTag, tlsHandshakeFailed, tlsCertificateUntrusted,
                tlsCertificateExpired, tlsHostnameMismatch
        }
        private let base: Base
        private init(_ base: Base) { self.base = base }

        /// A value rabbitmq-c would refuse or abort on (for example a queue
        /// name over 255 bytes); caught before any C call.
        public static let invalidArgument = Code(.invalidArgument)
        /// The TCP connection or the AMQP handshake failed (closed port,
        /// unknown host, missing virtual host, connect timeout).
        public static let connectionFailed = Code(.connectionFailed)
        /// The broker refused the credentials (`403 ACCESS_REFUSED`).
        public static let authenticationFailed = Code(.authenticationFailed)
        /// The connection is closed: by the broker (see `replyCode`), by a
        /// socket failure, or by ``AMQPConnection/close()``.
        public static let connectionClosed = Code(.connectionClosed)
        /// The channel was closed by the broker (see `replyCode`, for example
        /// `404 NOT_FOUND` or `406 PRECONDITION_FAILED`) or by this process.
        public static let channelClosed = Code(.channelClosed)
        /// A broker reply did not arrive within the configured timeout.
        public static let timeout = Code(.timeout)
        /// The broker sent no traffic for two heartbeat intervals.
        public static let heartbeatTimeout = Code(.heartbeatTimeout)
        /// The broker sent something the AMQP layer did not expect.
        public static let protocolError = Code(.protocolError)
        /// The broker answered a publish with `basic.nack`.
        public static let publishNacked = Code(.publishNacked)
        /// A mandatory publish matched no queue (`basic.return`, usually
        /// `312 NO_ROUTE`).
        public static let publishReturned = Code(.publishReturned)
        /// A delivery tag of a channel that has since closed: acknowledging it
        /// on a new channel would close that channel too, so it is refused
        /// here. The broker redelivers such messages by itself.
        public static let staleDeliveryTag = Code(.staleDeliveryTag)
        /// The TLS handshake failed before any certificate was checked: most
        /// often `amqps://` to a plain AMQP port, or the broker refused this
        /// client's certificate (rabbitmq-c `AMQP_STATUS_SSL_CONNECTION_FAILED`,
        /// `AMQP_STATUS_SSL_ERROR`).
        public static let tlsHandshakeFailed = Code(.tlsHandshakeFailed)
        /// The broker's certificate chain does not verify against the CA
        /// file (an unknown CA, a self-signed certificate);
        /// `AMQP_STATUS_SSL_PEER_VERIFY_FAILED`. The message names OpenSSL's
        /// reason.
        public static let tlsCertificateUntrusted = Code(.tlsCertificateUntrusted)
        /// The broker's certificate has expired or is not valid yet
        /// (`AMQP_STATUS_SSL_PEER_VERIFY_FAILED` with OpenSSL's
        /// `X509_V_ERR_CERT_HAS_EXPIRED` or `X509_V_ERR_CERT_NOT_YET_VALID`).
        public static let tlsCertificateExpired = Code(.tlsCertificateExpired)
        /// The broker's certificate is valid but not for the host name of the
        /// URL; `AMQP_STATUS_SSL_HOSTNAME_VERIFY_FAILED`.
        public static let tlsHostnameMismatch = Code(.tlsHostnameMismatch)

        public var description: String { base.rawValue }
    }

    public var code: Code
    /// What went wrong, in words.
    public var message: String
    /// The broker's AMQP reply code, when the broker gave one.
    public var replyCode: UInt16?
    /// The broker's reply text, when the broker gave one.
    public var replyText: String?
    /// rabbitmq-c's status code (negative `amqp_status_enum`), when the
    /// failure came from the library.
    public var libraryStatus: Int32?

    public init(
        _ code: Code, _ message: String, replyCode: UInt16? = nil, replyText: String? = nil,
        libraryStatus: Int32? = nil
    ) {
        self.code = code
        self.message = message
        self.replyCode = replyCode
        self.replyText = replyText
        self.libraryStatus = libraryStatus
    }

    public var description: String {
        var text = message
        if let replyCode {
            text += ": \(replyCode)"
            if let replyText { text += " \(replyText)" }
        }
        return text
    }
}
