import AMQP
import CommandSupport
import QTasksRabbitMQ
import Testing

/// `--tls-ca`, `--tls-cert`, `--tls-key`, `--tls-insecure-no-verify` as
/// URL query parameters: no server needed.
struct TLSOptionsTests {
    @Test func theOptionsApplyToEveryAmqpsURLOfAFailoverList() throws {
        let options = try TLSOptions.parse(["--tls-ca", "/etc/q/ca.pem", "--tls-cert", "/etc/q/c.pem", "--tls-key", "/etc/q/c.key"])
        let url = try options.applied(to: "amqps://u:p@a/%2F?heartbeat=5;amqp://u:p@b/%2F;amqps://c/%2F")
        let configuration = try RabbitMQBrokerConfiguration(url: url)
        let endpoints = configuration.endpoints
        #expect(endpoints.count == 3)
        #expect(endpoints[0].tls == .require(caFile: "/etc/q/ca.pem", certificateFile: "/etc/q/c.pem", keyFile: "/etc/q/c.key"))
        #expect(endpoints[0].heartbeat == .seconds(5))
        #expect(endpoints[0].saslMechanism == .plain)  // it has a password
        #expect(endpoints[1].tls == .disable)
        #expect(endpoints[2].saslMechanism == .external)  // no password, a certificate
        #expect(!configuration.redactedURL.contains(":p@"))
    }

    @Test func anOptionWinsOverTheURLAndInsecureIsExplicit() throws {
        let options = try TLSOptions.parse(["--tls-ca", "/new/ca.pem", "--tls-insecure-no-verify"])
        let url = try options.applied(to: "amqps://h/?cacertfile=/old/ca.pem")
        let configuration = try AMQPConfiguration(url: url)
        #expect(!configuration.tls.verifiesPeer)
        let verified = try AMQPConfiguration(url: try TLSOptions.parse(["--tls-ca", "/new/ca.pem"]).applied(to: "amqps://h/?cacertfile=/old/ca.pem"))
        #expect(verified.tls.caFile == "/new/ca.pem")
    }

    @Test func optionsWithoutAnAmqpsURLAreRefused() throws {
        let options = try TLSOptions.parse(["--tls-ca", "/ca.pem"])
        #expect(throws: (any Error).self) { try options.applied(to: "amqp://h/%2F") }
        // No options: any URL passes unchanged.
        #expect(try TLSOptions.parse([]).applied(to: "amqp://h/%2F") == "amqp://h/%2F")
    }
}
