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
