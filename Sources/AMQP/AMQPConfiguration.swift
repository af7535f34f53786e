import Foundation

/// Where and how to connect to a RabbitMQ broker.
///
/// Every field has a default, so `AMQPConfiguration()` connects to a local
/// broker as `guest` (which RabbitMQ allows from localhost only).
public struct AMQPConfiguration: Sendable, Hashable {
    public var host: String = "127.0.0.1"
    public var port: Int = 5672
    public var username: String = "guest"
    /// The password for SASL PLAIN. Setting it (or giving one in the URL)
    /// also means "not EXTERNAL": see ``saslMechanism``.
    public var password: String = "guest" {
        didSet { passwordIsDefault = false }
    }
    /// False once a password was set or parsed from a URL.
    var passwordIsDefault = true
    /// TLS for the connection; ``TLS-swift.struct/disable`` by default,
    /// ``TLS-swift.struct/require(caFile:certificateFile:keyFile:)`` for an
    /// `amqps://` URL.
    public var tls: TLS = .disable
    /// How the client authenticates; ``SASLMechanism/plain`` by default.
    public var saslMechanism: SASLMechanism = .plain
    /// The virtual host; RabbitMQ's default one is `/`.
    public var virtualHost: String = "/"
    /// Heartbeat interval, negotiated explicitly (rabbitmq-c's own default
    /// is 0, which turns heartbeats off). `.zero` disables heartbeats. AMQP
    /// negotiates whole seconds: a fraction rounds up, and more than 65535 s
    /// is 65535 s. Default 60 s.
    public var heartbeat: Duration = .seconds(60)
    /// How long the TCP connect and the AMQP handshake may take; more than a
    /// day is a day. Default 10 s.
    public var connectTimeout: Duration = .seconds(10)
    /// How long a synchronous request (queue declare, consume, close) may wait
    /// for the broker's reply; more than a day is a day. Default 30 s.
    public var rpcTimeout: Duration = .seconds(30)
    /// Largest frame size in bytes; the broker may lower it.
    public var frameMax: Int = 131_072
    /// Most channels on this connection; the broker may lower it.
    public var channelMax: Int = 2047
    /// Shown in the management UI and `rabbitmqctl list_connections`.
    public var connectionName: String?

    public init() {}

    /// The SASL mechanism of `connection.start-ok`.
    public enum SASLMechanism: String, Sendable, Hashable {
        /// User name and password.
        case plain = "PLAIN"
        /// The identity is the client certificate's (RabbitMQ's
        /// `rabbitmq_auth_mechanism_ssl` plugin maps its subject, or its
        /// common name with `ssl_cert_login_from = common_name`, to a user);
        /// needs TLS with a client certificate.
        case external = "EXTERNAL"
    }

    /// Sets ``tls`` and, when it carries a client certificate and no
    /// password was given (in the URL or by setting ``password``), turns
    /// on ``SASLMechanism/external``: the rule of an `amqps://user@host`
    /// URL with a certificate. Returns the result; `self` is unchanged.
    public func applying(tls: TLS) -> AMQPConfiguration {
        var copy = self
        copy.tls = tls
        if tls.isEnabled, tls.hasClientCertificate, passwordIsDefault { copy.saslMechanism = .external }
        return copy
    }

    /// Parses an AMQP URI: `amqp://user:pass@host:port/vhost?query`.
    ///
    /// Follows RabbitMQ's "AMQP URI Specification" strictly:
    /// `amqp[s]://[userinfo@]host[:port][/vhost][?query]`, where `userinfo`
    /// is `user[:password]`. User, password, host and vhost are
    /// percent-decoded, and may hold only RFC 3986's unreserved characters
    /// (`A-Z a-z 0-9 - . _ ~`), its sub-delimiters (`! $ & ' ( ) * + , ; =`)
    /// and `%XX` escapes (the vhost also `:` and `@`): anything else (a
    /// space, a second `@`, a `/` inside the vhost, a `:` in the password) is
    /// refused rather than guessed at, so that a typo cannot reach another
    /// broker, user or vhost. The default vhost `/` is written `%2F`
    /// (`amqp://guest:guest@127.0.0.1:5672/%2F`). An absent or empty path
    /// means the default vhost `/` (as pika reads it). Omitted parts keep
    /// their defaults (`guest:guest@127.0.0.1:5672`), as the specification
    /// says; text that does not start with `amqp://` or `amqps://` (for
    /// example `amqp:/host`, one slash) is refused. Supported query
    /// parameters, from RabbitMQ's "URI Query Parameters" guide: `heartbeat`
    /// (seconds), `connection_timeout` (milliseconds), `channel_max`,
    /// `frame_max`; plus `connection_name`.
    ///
    /// `amqps://` turns on TLS with full verification
    /// (``TLS-swift.struct/require(caFile:certificateFile:keyFile:)``), port
    /// 5671 by default. Its query parameters, named as in RabbitMQ's "URI
    /// Query Parameters" guide (the Erlang client's TLS options):
    /// `cacertfile`, `certfile`, `keyfile` (PEM paths) and `verify`
    /// (`verify_peer`, the default, or `verify_none`, which is
    /// ``TLS-swift.struct/insecureNoVerification(certificateFile:keyFile:)``).
    /// An `amqps` URL with a `certfile` and no password authenticates with
    /// ``SASLMechanism/external``.
    ///
    /// - Throws: ``AMQPError`` with code `.invalidArgument` for another scheme,
    ///   a malformed URL, a bad port, an unknown query parameter or a TLS
    ///   parameter on an `amqp://` URL. The message shows the URL with its
    ///   password replaced by `***`, and never a character of the password.
    public init(url: String) throws {
        func invalid(_ why: String) -> AMQPError {
            AMQPError(.invalidArgument, "invalid AMQP URL '\(Self.printable(Self.redact(url)))': \(why)")
        }
        let parts = try URIParts(url, invalid: invalid)
        let secure = parts.secure
        if let host = parts.host { self.host = host }
        port = Self.defaultPort(tls: secure)
        if let port = parts.port { self.port = port }
        if let user = parts.user { self.username = user }
        if let password = parts.password {
            self.password = password
            passwordIsDefault = false  // observers do not run in an initializer
        }
        if let virtualHost = parts.virtualHost { self.virtualHost = virtualHost }
        var caFile: String?
        var certificateFile: String?
        var keyFile: String?
        var verifyPeer = true
        for item in parts.query {
            let value = item.value
            switch item.name {
            case "heartbeat":
                guard let seconds = Int(value), seconds >= 0, seconds <= 65535 else {
                    throw invalid("heartbeat must be whole seconds 0...65535")
                }
                heartbeat = .seconds(seconds)
            case "connection_timeout":
                guard let milliseconds = Int(value), milliseconds > 0 else {
                    throw invalid("connection_timeout must be milliseconds > 0")
                }
                connectTimeout = .milliseconds(milliseconds)
            case "channel_max":
                guard let count = Int(value), (1...65535).contains(count) else {
                    throw invalid("channel_max must be 1...65535")
                }
                channelMax = count
            case "frame_max":
                guard let size = Int(value), size >= 4096 else { throw invalid("frame_max must be >= 4096") }
                frameMax = size
            case "connection_name":
                connectionName = value
            case "cacertfile", "certfile", "keyfile", "verify":
                guard secure else { throw invalid("\(item.name) needs an amqps:// URL") }
                guard !value.isEmpty else { throw invalid("\(item.name) is empty") }
                switch item.name {
                case "cacertfile": caFile = value
                case "certfile": certificateFile = value
                case "keyfile": keyFile = value
                default:
                    switch value {
                    case "verify_peer": verifyPeer = true
                    case "verify_none": verifyPeer = false
                    default: throw invalid("verify must be verify_peer or verify_none")
                    }
                }
            default:
                throw invalid(
                    "unknown query parameter '\(item.name)' (supported: heartbeat, connection_timeout, channel_max, frame_max, connection_name; with amqps: cacertfile, certfile, keyfile, verify)"
                )
            }
        }
        if secure {
            let tls: TLS = verifyPeer
                ? .require(caFile: caFile, certificateFile: certificateFile, keyFile: keyFile)
                : .insecureNoVerification(certificateFile: certificateFile, keyFile: keyFile)
            self = applying(tls: tls)
        }
    }

    /// The URL with the password replaced by `***`, safe for logs.
    public var redactedURL: String {
        let vhost = virtualHost.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? virtualHost
        // `;` encoded too: it separates the URLs of a failover list.
        var allowed = CharacterSet.urlUserAllowed
        allowed.remove(";")
        let user = username.addingPercentEncoding(withAllowedCharacters: allowed) ?? username
        let host = self.host.contains(":") ? "[\(self.host)]" : self.host
        let scheme = tls.isEnabled ? "amqps" : "amqp"
        // EXTERNAL has no password to hide; the user name is still shown.
        return "\(scheme)://\(user):***@\(host):\(port)/\(vhost)"
    }

    /// Replaces the password of an AMQP URL string with `***`, for messages
    /// about URLs that may not parse. Every URL in the text is redacted, so
    /// a failover list (`url1;url2`, `RabbitMQBrokerConfiguration`) is safe
    /// too, and so is a URL written without its scheme (`user:pass@host`).
    /// A password is whatever lies between the first `:` of the authority
    /// and the last `@` before the next `://`, so a raw `;` or `@` in it
    /// does not leak its tail.
    public static func redact(_ url: String) -> String {
        var redacted = ""
        var rest = Substring(url)
        // Text that does not start with `scheme://` is an authority itself.
        var authorityStart: Substring.Index? = rest.startIndex
        if let schemeEnd = rest.range(of: "://"), isScheme(rest[..<schemeEnd.lowerBound]) { authorityStart = nil }
        while true {
            let start: Substring.Index
            if let authorityStart {
                start = authorityStart
            } else {
                guard let schemeEnd = rest.range(of: "://") else { break }
                start = schemeEnd.upperBound
            }
            authorityStart = nil
            redacted += rest[..<start]
            let authority = rest[start...]
            let region = authority[..<(authority.range(of: "://")?.lowerBound ?? authority.endIndex)]
            if let at = region.lastIndex(of: "@"), let colon = region[..<at].firstIndex(of: ":") {
                redacted += authority[..<colon] + ":***"
                rest = authority[at...]
            } else {
                rest = authority
            }
        }
        return redacted + rest
    }

    /// Control characters (a newline pasted into a URL) escaped, so that
    /// the message stays on one line.
    static func printable(_ text: String) -> String {
        var escaped = ""
        for scalar in text.unicodeScalars {
            if scalar.properties.generalCategory == .control {
                escaped += scalar.escaped(asASCII: true)
            } else {
                escaped.unicodeScalars.append(scalar)
            }
        }
        return escaped
    }

    /// RFC 3986: `ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )`.
    static func isScheme(_ text: Substring) -> Bool {
        guard let first = text.first, first.isASCII, first.isLetter else { return false }
        return text.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || "+-.".contains($0)) }
    }
}
