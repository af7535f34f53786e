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
        ("amqps://h/", "TLS"),
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

    @Test func redactsThePassword() throws {
        let configuration = try AMQPConfiguration(url: "amqp://bob:hunter2@h:5672/%2F")
        #expect(!configuration.redactedURL.contains("hunter2"))
        #expect(configuration.redactedURL == "amqp://bob:***@h:5672/%2F")
        #expect(AMQPConfiguration.redact("amqp://bob:hunter2@h/x") == "amqp://bob:***@h/x")
        #expect(AMQPConfiguration.redact("not a url") == "not a url")
    }
}
