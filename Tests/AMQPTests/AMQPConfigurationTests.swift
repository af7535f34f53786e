import AMQP
import Testing

@Suite struct AMQPConfigurationTests {
    @Test func defaultsMatchALocalBroker() throws {
        let configuration = AMQPConfiguration()
        #expect(configuration.host == "127.0.0.1")
        #expect(configuration.port == 5672)
        #expect(configuration.username == "guest")
        #expect(configuration.password == "guest")
        #expect(configuration.virtualHost == "/")
        #expect(configuration.heartbeat == .seconds(60))
    }

    @Test func parsesAFullURL() throws {
        let configuration = try AMQPConfiguration(url: "amqp://alice:s%40cret@broker.example:5673/prod%2Forders?heartbeat=15&connection_timeout=2500")
        #expect(configuration.host == "broker.example")
        #expect(configuration.port == 5673)
        #expect(configuration.username == "alice")
        #expect(configuration.password == "s@cret")
        #expect(configuration.virtualHost == "prod/orders")
        #expect(configuration.heartbeat == .seconds(15))
        #expect(configuration.connectTimeout == .milliseconds(2500))
    }

    @Test func ipv6LiteralsLoseTheirBracketsForTheSocketAndKeepThemInTheURL() throws {
        let configuration = try AMQPConfiguration(url: "amqp://u:p@[::1]:5673/%2F")
        #expect(configuration.host == "::1")
        #expect(configuration.port == 5673)
        #expect(configuration.redactedURL == "amqp://u:***@[::1]:5673/%2F")
        // A ';' in a user name is encoded: it would split a failover list.
        #expect(try AMQPConfiguration(url: "amqp://us%3Ber:p@h/%2F").redactedURL == "amqp://us%3Ber:***@h:5672/%2F")
    }

    @Test("%2F is the default vhost, and so are an empty and an absent path",
          arguments: ["amqp://h/%2F", "amqp://h/", "amqp://h"])
    func defaultVirtualHost(url: String) throws {
        #expect(try AMQPConfiguration(url: url).virtualHost == "/")
    }

    @Test("Rejected URLs say why", arguments: [
        ("http://h/", "scheme must be amqp"),
        ("amqp://h/?cacertfile=/ca.pem", "cacertfile needs an amqps:// URL"),
        ("amqps://h/?verify=maybe", "verify must be verify_peer or verify_none"),
        ("amqp://h:70000/", "port"),
        ("amqp://h/?heartbeat=soon", "heartbeat"),
        ("amqp://h/?colour=blue", "unknown query parameter 'colour'"),
    ])
    func rejectsBadURLs(url: String, reason: String) {
        #expect {
            try AMQPConfiguration(url: url)
        } throws: { error in
            let error = error as? AMQPError
            return error?.code == .invalidArgument && error?.message.contains(reason) == true
        }
    }

    @Test func amqpsTurnsOnVerifiedTLSOnPort5671() throws {
        let configuration = try AMQPConfiguration(url: "amqps://bob:hunter2@rabbit.example/%2F")
        #expect(configuration.port == 5671)
        #expect(configuration.tls == .require())
        #expect(configuration.tls.verifiesPeer)
        #expect(configuration.saslMechanism == .plain)
        #expect(configuration.redactedURL == "amqps://bob:***@rabbit.example:5671/%2F")
        #expect(try AMQPConfiguration(url: "amqp://h").tls == .disable)
        #expect(try AMQPConfiguration(url: "amqps://h:5999").port == 5999)
    }

    @Test func amqpsQueryParametersNameTheFiles() throws {
        let configuration = try AMQPConfiguration(
            url: "amqps://h/?cacertfile=/etc/ca.pem&certfile=/etc/c.pem&keyfile=/etc/c.key&verify=verify_peer")
        #expect(configuration.tls == .require(caFile: "/etc/ca.pem", certificateFile: "/etc/c.pem", keyFile: "/etc/c.key"))
        // No password given and a certificate: EXTERNAL.
        #expect(configuration.saslMechanism == .external)
        let withPassword = try AMQPConfiguration(url: "amqps://u:p@h/?certfile=/c.pem&keyfile=/c.key")
        #expect(withPassword.saslMechanism == .plain)
        let insecure = try AMQPConfiguration(url: "amqps://h/?verify=verify_none")
        #expect(insecure.tls == .insecureNoVerification())
        #expect(!insecure.tls.verifiesPeer)
    }

    @Test func tlsFilesAreCheckedBeforeConnecting() async throws {
        var configuration = AMQPConfiguration()
        configuration.tls = .require(caFile: "/nonexistent/ca.pem")
        let error = await #expect(throws: AMQPError.self) { _ = try await AMQPConnection.connect(configuration) }
        #expect(error?.code == .invalidArgument)
        #expect(error?.message.contains("/nonexistent/ca.pem") == true)
        configuration.tls = .require(certificateFile: "/c.pem")
        let unpaired = await #expect(throws: AMQPError.self) { _ = try await AMQPConnection.connect(configuration) }
        #expect(unpaired?.message.contains("without a key file") == true)
    }

    @Test func redactsThePassword() throws {
        let configuration = try AMQPConfiguration(url: "amqp://bob:hunter2@h:5672/%2F")
        #expect(!configuration.redactedURL.contains("hunter2"))
        #expect(configuration.redactedURL == "amqp://bob:***@h:5672/%2F")
        #expect(AMQPConfiguration.redact("amqp://bob:hunter2@h/x") == "amqp://bob:***@h/x")
        #expect(AMQPConfiguration.redact("not a url") == "not a url")
    }
}

/// Issue #17, item 8: RabbitMQ's URI specification, read strictly. What
/// Foundation's lenient parser used to accept (`amqp:/h:5692` as the
/// default host with vhost `h:5692`; `amqp://gu est@@h` as the user
/// `gu est@`) is refused, so that a typo cannot reach another broker.
@Suite struct AMQPURISpecificationTests {
    @Test("Refused, with the reason", arguments: [
        ("amqp:/127.0.0.1:5692", "followed by '//'"),
        ("amqp:127.0.0.1", "followed by '//'"),
        ("amqp:///%2F?heartbeat=5#x", "'#' is not allowed"),
        ("amqp://gu est@@127.0.0.1", "more than one '@'"),
        ("amqp://gu est@127.0.0.1", "a space is not allowed in the user name"),
        ("amqp://u:p@h:/%2F", "the port after ':' is empty"),
        ("amqp://u:p@h:56x2/%2F", "port '56x2'"),
        ("amqp://u:p@h:0/", "out of range"),
        ("amqp://u:p@h/a/b", "one path segment"),
        ("amqp://u:p@h/a%2", "two hex digits"),
        ("amqp://u:p@h/%FF", "not UTF-8"),
        ("amqp://u:p@[::1/%2F", "closing ']'"),
        ("amqp://u:p@[zz]/%2F", "not an IPv6 address"),
        ("amqp://u:p@h h/", "a space is not allowed in the host"),
        ("127.0.0.1:5672", "must start with amqp:// or amqps://"),
        ("", "must start with amqp:// or amqps://"),
        ("amqp://u:p@h/?heartbeat=5%", "two hex digits"),
    ])
    func refused(url: String, reason: String) {
        let error = #expect(throws: AMQPError.self) { try AMQPConfiguration(url: url) }
        #expect(error?.code == .invalidArgument)
        #expect(error?.message.contains(reason) == true, "\(String(describing: error))")
    }

    @Test("A bad password is refused without a character of it in the message", arguments: [
        "amqp://guest:hunter 2@h/%2F", "amqp://guest:hun:ter2@h/%2F", "amqp://guest:hunter2%zz@h/%2F",
        "amqp://guest:hunter2\u{1}@h/%2F",
    ])
    func passwordNeverShown(url: String) {
        let error = #expect(throws: AMQPError.self) { try AMQPConfiguration(url: url) }
        #expect(error?.message.contains("password") == true, "\(String(describing: error))")
        #expect(error?.message.contains("hun") == false, "\(String(describing: error))")
        #expect(error?.message.contains("ter2") == false, "\(String(describing: error))")
    }

    /// The examples of RabbitMQ's URI specification that this client reads
    /// as it says (an empty path keeps the default vhost `/`, as pika does).
    @Test func theSpecificationsExamples() throws {
        let full = try AMQPConfiguration(url: "amqp://user:pass@host:10000/vhost")
        #expect((full.username, full.password, full.host, full.port, full.virtualHost) == ("user", "pass", "host", 10000, "vhost"))
        let encoded = try AMQPConfiguration(url: "amqp://user%61:%61pass@ho%61st:10000/v%2fhost")
        #expect((encoded.username, encoded.password, encoded.host, encoded.virtualHost) == ("usera", "apass", "hoast", "v/host"))
        let defaults = try AMQPConfiguration(url: "amqp://")
        #expect((defaults.username, defaults.password, defaults.host, defaults.port, defaults.virtualHost) == ("guest", "guest", "127.0.0.1", 5672, "/"))
        let empty = try AMQPConfiguration(url: "amqp://:@/")
        #expect((empty.username, empty.password, empty.virtualHost) == ("", "", "/"))
        let user = try AMQPConfiguration(url: "amqp://user@")
        #expect((user.username, user.password, user.host) == ("user", "guest", "127.0.0.1"))
        let password = try AMQPConfiguration(url: "amqp://:pass@")
        #expect((password.username, password.password) == ("", "pass"))
        let ipv6 = try AMQPConfiguration(url: "amqp://[::1]")
        #expect((ipv6.host, ipv6.port) == ("::1", 5672))
        #expect(try AMQPConfiguration(url: "amqp://host:10000").port == 10000)
        #expect(try AMQPConfiguration(url: "AMQPS://host").tls.isEnabled)
        // Sub-delimiters are allowed raw: a ';' or '!' in a password.
        #expect(try AMQPConfiguration(url: "amqp://u:p;a!ss@h/%2F").password == "p;a!ss")
        // ':' and '@' are allowed in a vhost segment.
        #expect(try AMQPConfiguration(url: "amqp://h/a:b@c").virtualHost == "a:b@c")
        // Query values are percent-decoded.
        #expect(try AMQPConfiguration(url: "amqp://h/%2F?connection_name=my%20app").connectionName == "my app")
    }
}
