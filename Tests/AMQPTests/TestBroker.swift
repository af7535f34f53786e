import AMQP
import Foundation
import TestSupport

/// The RabbitMQ the integration tests use: `QTASKS_URL`, else the local
/// default. `deploy/test.sh` starts one and sets `QTASKS_REQUIRE_BROKER=1`, so
/// that a missing broker fails the run there instead of skipping.
enum TestBroker {
    static let url = ProcessInfo.processInfo.environment["QTASKS_URL"] ?? "amqp://guest:guest@127.0.0.1:5672/%2F"

    static var configuration: AMQPConfiguration {
        var configuration = try! AMQPConfiguration(url: url)
        configuration.connectTimeout = .seconds(5)
        return configuration
    }

    /// True when the tests must run: a broker answers, or one is required.
    static let enabled: Bool = {
        if ProcessInfo.processInfo.environment["QTASKS_REQUIRE_BROKER"] == "1" { return true }
        return TCPPort.isOpen(host: configuration.host, port: configuration.port)
    }()


    /// A queue name no other test uses.
    static func uniqueQueue(_ prefix: String = "amqp-test") -> String {
        "\(prefix)-\(UUID().uuidString.prefix(8).lowercased())"
    }
}
