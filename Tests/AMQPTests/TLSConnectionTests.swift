import AMQP
import Foundation
import TestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The TLS listener the TLS tests use. deploy/test.sh starts a node with one
/// and sets `QTASKS_TEST_TLS_URL` (amqps to its TLS port), `QTASKS_TEST_TLS_DIR`
/// (the certificates of deploy/tls-certs.sh) and `QTASKS_TEST_TLS_NODE_PORT`
/// (the same node's plain AMQP port), so there the suite always runs.
enum TLSBroker {
    static let environment = ProcessInfo.processInfo.environment
    static let url = environment["QTASKS_TEST_TLS_URL"] ?? ""
    static let directory = environment["QTASKS_TEST_TLS_DIR"] ?? ""
    static let nodePort = environment["QTASKS_TEST_TLS_NODE_PORT"].flatMap(Int.init) ?? 0
    static let enabled = !url.isEmpty && !directory.isEmpty && nodePort != 0

    static func file(_ name: String) -> String { directory + "/" + name }

    /// The TLS URL's configuration, verified against the test CA.
    static var configuration: AMQPConfiguration {
        var configuration = try! AMQPConfiguration(url: url)
        configuration.tls = .require(caFile: file("ca.pem"))
        configuration.connectTimeout = .seconds(10)
        return configuration
    }

    /// Closes, from the broker's side (`rabbitmqctl close_connection`), the
    /// connections whose client-provided name is `name`: only this test's,
    /// never the others' on the same node. Returns how many.
    static func closeConnections(named name: String) async throws -> Int {
        try await PrivateRabbitMQ(port: nodePort).closeConnections(named: name, reason: "TLS reconnect test")
    }

    /// Connects, expecting failure; returns the error and how long it took.
    static func failure(_ configuration: AMQPConfiguration) async -> (AMQPError?, Duration) {
        let clock = ContinuousClock()
        let start = clock.now
        do {
            let connection = try await AMQPConnection.connect(configuration)
            await connection.close()
            return (nil, clock.now - start)
        } catch {
            if environment["QTASKS_TEST_TLS_SHOW"] == "1" { print("TLS-ERROR: \(error)") }
            return (error as? AMQPError, clock.now - start)
        }
    }
}

/// An `openssl s_server` presenting a certificate of the test's choice, for
/// the certificate failures the real broker cannot show (expired, wrong
/// host). It completes the TLS handshake; the client's checks come after.
final class TLSStubServer: Sendable {
    let port: Int
    private let pid: pid_t

    private init(port: Int, pid: pid_t) {
        self.port = port
        self.pid = pid
    }

    static func start(certificate: String, key: String) async throws -> TLSStubServer {
        let port = try TCPPort.free()
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
        // -www: answers by itself and never reads standard input.
        let arguments = ["s_server", "-accept", "127.0.0.1:\(port)", "-cert", certificate, "-key", key, "-www"]
        let pid: pid_t
        switch Spawn.start("/usr/bin/openssl", arguments, environment: ProcessInfo.processInfo.environment, actions: &actions) {
        case .success(let started): pid = started
        case .failure(let error): throw error
        }
        let server = TLSStubServer(port: port, pid: pid)
        // Awaited, not slept: ready as soon as it accepts.
        let deadline = ContinuousClock.now + .seconds(30)
        while !TCPPort.isOpen(host: "127.0.0.1", port: port, timeout: 1) {
            guard ContinuousClock.now < deadline else {
                server.stop()
                throw AMQPError(.connectionFailed, "openssl s_server did not listen on \(port) within 30 s")
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        return server
    }

    func stop() {
        kill(pid, SIGTERM)
        var status: Int32 = 0
        while waitpid(pid, &status, 0) == -1 && errno == EINTR {}
    }
}

@Suite(
    .enabled(if: TLSBroker.enabled, "no TLS listener configured (QTASKS_TEST_TLS_URL); deploy/test.sh starts one"),
    .serialized, .timeLimit(.minutes(3)))
struct TLSConnectionTests {
    @Test func publishesAndConsumesOverTLS() async throws {
        try await AMQPConnection.withConnection(TLSBroker.configuration) { connection in
            let channel = try await connection.openChannel()
            let queue = TestBroker.uniqueQueue("tls")
            try await channel.declareQueue(queue, durable: false, autoDelete: true)
            try await channel.enableConfirms()
            let consumer = try await channel.consume(queue: queue)
            let body = Array("over TLS ✓".utf8) + (0..<300_000).map { UInt8(truncatingIfNeeded: $0) }
            try await channel.publish(body, routingKey: queue, properties: AMQPProperties(correlationID: "c-1"))
            var iterator = consumer.makeAsyncIterator()
            let delivery = try #require(try await iterator.next())
            #expect(delivery.body == body)
            #expect(delivery.properties.correlationID == "c-1")
            try await delivery.ack()
        }
    }

    @Test func mutualTLSWithAClientCertificate() async throws {
        var configuration = TLSBroker.configuration
        configuration.tls = .require(
            caFile: TLSBroker.file("ca.pem"), certificateFile: TLSBroker.file("client.pem"),
            keyFile: TLSBroker.file("client.key"))
        // A password in the URL: PLAIN, with the certificate as a second factor.
        #expect(configuration.saslMechanism == .plain)
        try await AMQPConnection.withConnection(configuration) { connection in
            try await connection.withChannel { channel in
                try await channel.declareQueue(TestBroker.uniqueQueue("tls-mutual"), durable: false, autoDelete: true)
            }
        }
    }

    @Test func theBrokerRefusesAClientCertificateFromAnotherCA() async throws {
        var configuration = TLSBroker.configuration
        configuration.tls = .require(
            caFile: TLSBroker.file("ca.pem"), certificateFile: TLSBroker.file("untrusted-client.pem"),
            keyFile: TLSBroker.file("untrusted-client.key"))
        let (error, elapsed) = await TLSBroker.failure(configuration)
        #expect(error?.code == .tlsHandshakeFailed, "\(String(describing: error))")
        #expect(error?.message.contains("certificate") == true, "\(String(describing: error))")
        #expect(elapsed < .seconds(10))
    }

    @Test func externalAuthenticationTakesTheUserFromTheCertificate() async throws {
        // The user named by the client certificate's CN, with no password.
        let node = PrivateRabbitMQ(port: TLSBroker.nodePort)
        _ = try? await node.script(["ctl", "add_user", "qtasks-client", UUID().uuidString])
        try await node.ctl("clear_password", "qtasks-client")
        try await node.ctl("set_permissions", "-p", "/", "qtasks-client", ".*", ".*", ".*")
        let base = try AMQPConfiguration(url: TLSBroker.url)
        let url = "amqps://qtasks-client@\(base.host):\(base.port)/%2F?cacertfile=\(TLSBroker.file("ca.pem"))&certfile=\(TLSBroker.file("client.pem"))&keyfile=\(TLSBroker.file("client.key"))"
        let configuration = try AMQPConfiguration(url: url)
        #expect(configuration.saslMechanism == .external)
        try await AMQPConnection.withConnection(configuration) { connection in
            try await connection.withChannel { channel in
                try await channel.declareQueue(TestBroker.uniqueQueue("tls-external"), durable: false, autoDelete: true)
            }
        }
    }

    @Test func anUnknownCAIsRefused() async throws {
        var configuration = TLSBroker.configuration
        configuration.tls = .require(caFile: TLSBroker.file("other-ca.pem"))
        let (error, elapsed) = await TLSBroker.failure(configuration)
        #expect(error?.code == .tlsCertificateUntrusted, "\(String(describing: error))")
        #expect(error?.message.contains("other-ca.pem") == true)
        #expect(elapsed < .seconds(10))
        // The default, the system's CA bundle, does not know the test CA either.
        configuration.tls = .require()
        let (systemError, _) = await TLSBroker.failure(configuration)
        #expect(systemError?.code == .tlsCertificateUntrusted, "\(String(describing: systemError))")
        #expect(systemError?.message.contains("system's CA bundle") == true)
    }

    @Test func anExpiredCertificateIsRefused() async throws {
        let server = try await TLSStubServer.start(certificate: TLSBroker.file("expired.pem"), key: TLSBroker.file("expired.key"))
        defer { server.stop() }
        var configuration = TLSBroker.configuration
        configuration.host = "localhost"
        configuration.port = server.port
        let (error, elapsed) = await TLSBroker.failure(configuration)
        #expect(error?.code == .tlsCertificateExpired, "\(String(describing: error))")
        #expect(error?.message.contains("expired") == true)
        #expect(elapsed < .seconds(10))
    }

    @Test func aCertificateForAnotherHostIsRefused() async throws {
        let server = try await TLSStubServer.start(certificate: TLSBroker.file("wronghost.pem"), key: TLSBroker.file("wronghost.key"))
        defer { server.stop() }
        var configuration = TLSBroker.configuration
        configuration.host = "localhost"
        configuration.port = server.port
        let (error, elapsed) = await TLSBroker.failure(configuration)
        #expect(error?.code == .tlsHostnameMismatch, "\(String(describing: error))")
        #expect(error?.message.contains("'localhost'") == true)
        #expect(elapsed < .seconds(10))
    }

    @Test func insecureNoVerificationAcceptsAnyCertificate() async throws {
        let server = try await TLSStubServer.start(certificate: TLSBroker.file("expired.pem"), key: TLSBroker.file("expired.key"))
        defer { server.stop() }
        // Verification off: the expired certificate passes, and the stub
        // (not AMQP) then fails the AMQP handshake instead.
        var configuration = TLSBroker.configuration
        configuration.tls = .insecureNoVerification()
        configuration.connectTimeout = .seconds(2)
        configuration.host = "localhost"
        configuration.port = server.port
        let (error, _) = await TLSBroker.failure(configuration)
        #expect(error != nil)
        #expect(error?.code != .tlsCertificateExpired, "\(String(describing: error))")
        // And against the real broker it connects.
        var real = TLSBroker.configuration
        real.tls = .insecureNoVerification()
        let connection = try await AMQPConnection.connect(real)
        await connection.close()
    }

    @Test func amqpsToAPlainPortSaysSo() async throws {
        var configuration = TLSBroker.configuration
        configuration.port = TLSBroker.nodePort
        let (error, elapsed) = await TLSBroker.failure(configuration)
        #expect(error?.code == .tlsHandshakeFailed, "\(String(describing: error))")
        #expect(error?.message.contains("plain AMQP port") == true)
        #expect(elapsed < .seconds(10))
    }

    @Test func amqpToATLSPortSaysSo() async throws {
        var configuration = TLSBroker.configuration
        configuration.tls = .disable
        configuration.connectTimeout = .seconds(5)
        let (error, elapsed) = await TLSBroker.failure(configuration)
        #expect(error?.code == .connectionFailed, "\(String(describing: error))")
        #expect(error?.message.contains("amqps://") == true, "\(String(describing: error))")
        // Within its connect timeout, not a second one: the broker's TLS
        // handshake timeout (5 s too) may be what ends it, so a bound of
        // the timeout + 1 s left a loaded machine no room.
        #expect(elapsed < configuration.connectTimeout * 2)
        #expect(error?.message.contains("guest") != true || error?.message.contains(":guest@") != true)
    }

    @Test func aServerThatNeverAnswersTheTLSHandshakeTimesOut() async throws {
        // A listening socket that never accepts: the kernel completes the TCP
        // handshake, the ClientHello goes unanswered.
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        inet_pton(AF_INET, "127.0.0.1", &address.sin_addr)
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let listening = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer -> Int32 in
                guard bind(fd, pointer, length) == 0, listen(fd, 4) == 0 else { return -1 }
                return getsockname(fd, pointer, &length)
            }
        }
        try #require(listening == 0)
        var configuration = TLSBroker.configuration
        configuration.host = "127.0.0.1"
        configuration.port = Int(UInt16(bigEndian: address.sin_port))
        configuration.connectTimeout = .seconds(2)
        let (error, elapsed) = await TLSBroker.failure(configuration)
        #expect(error?.code == .connectionFailed, "\(String(describing: error))")
        #expect(error?.message.contains("timed out") == true, "\(String(describing: error))")
        #expect(elapsed < .seconds(8))
    }

    @Test func reconnectsOverTLSAfterTheBrokerClosesTheConnection() async throws {
        var configuration = TLSBroker.configuration
        configuration.connectionName = "tls-reconnect-\(UUID().uuidString.prefix(8))"
        let first = try await AMQPConnection.connect(configuration)
        let closedCount = try await TLSBroker.closeConnections(named: configuration.connectionName!)
        #expect(closedCount == 1)
        // Awaited: the connection reports the broker's close.
        let closed = await first.closed()
        #expect(closed?.code == .connectionClosed, "\(String(describing: closed))")
        let second = try await AMQPConnection.connect(configuration)
        let channel = try await second.openChannel()
        try await channel.declareQueue(TestBroker.uniqueQueue("tls-again"), durable: false, autoDelete: true)
        await second.close()
    }
}
