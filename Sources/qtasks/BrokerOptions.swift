import ArgumentParser
import Foundation

/// The broker URL option every command shares.
struct BrokerOptions: ParsableArguments {
    static let defaultURL = "amqp://guest:guest@127.0.0.1:5672/%2F"

    @Option(help: "Broker URL, amqp://user:pass@host:port/vhost (default: $QTASKS_URL, else the local broker).")
    var url: String?

    /// `--url`, else `QTASKS_URL`, else the local default.
    var resolvedURL: String {
        url ?? ProcessInfo.processInfo.environment["QTASKS_URL"] ?? Self.defaultURL
    }
}
