import AMQP
import Foundation

/// The RabbitMQ the integration tests use: `QTASKS_URL`, else the local
/// default. `deploy/test.sh` starts one and sets `QTASKS_REQUIRE_BROKER=1`, so
/// that a missing broker fails the run there instead of skipping.
enum TestBroker {
    static let url = ProcessInfo.processInfo.environment["QTASKS_URL"] ?? "amqp://guest:guest@127.0.0.1:5672/%2F"

    static var configuration: AMQPConfiguration {
        var configuration = try! AMQPConfiguration(url: url)
        configuration.connectTimeout = 5
        return configuration
    }

    /// True when the tests must run: a broker answers, or one is required.
    static let enabled: Bool = {
        if ProcessInfo.processInfo.environment["QTASKS_REQUIRE_BROKER"] == "1" { return true }
        return portIsOpen(host: configuration.host, port: configuration.port)
    }()

    static func portIsOpen(host: String, port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        inet_pton(AF_INET, host == "localhost" ? "127.0.0.1" : host, &address.sin_addr)
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0
            }
        }
    }

    /// A queue name no other test uses.
    static func uniqueQueue(_ prefix: String = "amqp-test") -> String {
        "\(prefix)-\(UUID().uuidString.prefix(8).lowercased())"
    }
}
