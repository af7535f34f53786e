import AMQP
import Foundation
import TestSupport

/// Where the integration tests find the broker, the built executables and
/// Python.
///
/// The suite runs when a broker answers at `QTASKS_URL` (else the local
/// default), or when `QTASKS_REQUIRE_BROKER=1` (set by `deploy/test.sh`), so
/// that a missing broker fails the run there instead of skipping it.
enum IntegrationEnvironment {
    static let url = ProcessInfo.processInfo.environment["QTASKS_URL"] ?? "amqp://guest:guest@127.0.0.1:5672/%2F"

    static var configuration: AMQPConfiguration {
        var configuration = try! AMQPConfiguration(url: url)
        configuration.connectTimeout = .seconds(5)
        configuration.rpcTimeout = .seconds(10)
        return configuration
    }

    /// RabbitMQ's management API with credentials
    /// (`http://guest:guest@127.0.0.1:15672`), set by `deploy/test.sh`,
    /// which starts the broker with the management plugin; nil when not set.
    static let managementURL: String? = ProcessInfo.processInfo.environment["QTASKS_MANAGEMENT_URL"].flatMap {
        $0.isEmpty ? nil : $0
    }

    /// True when the tests must run: a broker answers, or one is required.
    static let enabled: Bool = {
        if ProcessInfo.processInfo.environment["QTASKS_REQUIRE_BROKER"] == "1" { return true }
        return TCPPort.isOpen(host: configuration.host, port: configuration.port)
    }()


    /// A queue name no other test (or run) uses: `it-<what>-<8 hex>`.
    static func uniqueQueue(_ what: String) -> String {
        "it-\(what)-\(UUID().uuidString.prefix(8).lowercased())"
    }

    /// The repository root, from this file's path.
    static let repositoryRoot: URL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// The build products directory holding `qtasks` and `qtasks-example`.
    ///
    /// `QTASKS_BIN_DIR` when set; else the directory of the running test
    /// executable (`swift test` builds the executables next to the test
    /// bundle, with or without `--scratch-path`); else `<repo>/.build/debug`.
    static let productsDirectory: URL = {
        let fileManager = FileManager.default
        func holdsProducts(_ directory: URL) -> Bool {
            fileManager.isExecutableFile(atPath: directory.appendingPathComponent("qtasks-example").path)
                && fileManager.isExecutableFile(atPath: directory.appendingPathComponent("qtasks").path)
        }
        var candidates: [URL] = []
        if let explicit = ProcessInfo.processInfo.environment["QTASKS_BIN_DIR"], !explicit.isEmpty {
            candidates.append(URL(fileURLWithPath: explicit))
        }
        // Linux: the test bundle is an executable, /proc/self/exe names it.
        if let executable = try? fileManager.destinationOfSymbolicLink(atPath: "/proc/self/exe") {
            candidates.append(URL(fileURLWithPath: executable).deletingLastPathComponent())
        }
        candidates.append(Bundle.main.bundleURL)
        candidates.append(Bundle.main.bundleURL.deletingLastPathComponent())
        candidates.append(repositoryRoot.appendingPathComponent(".build/debug"))
        return candidates.first(where: holdsProducts) ?? candidates[candidates.count - 1]
    }()

    static var workerExecutable: String { productsDirectory.appendingPathComponent("qtasks-example").path }
    static var cliExecutable: String { productsDirectory.appendingPathComponent("qtasks").path }

    /// Python with pika: `$QTASKS_VENV/bin/python`, else the venv made by
    /// `deploy/install-deps.sh` in `.run/venv`.
    static var python: String? {
        var candidates: [String] = []
        if let venv = ProcessInfo.processInfo.environment["QTASKS_VENV"], !venv.isEmpty {
            candidates.append(venv + "/bin/python")
        }
        candidates.append(repositoryRoot.appendingPathComponent(".run/venv/bin/python").path)
        return candidates.first(where: FileManager.default.isExecutableFile(atPath:))
    }

    /// An executable on `PATH` (for the Debian `amqp-tools`).
    static func onPath(_ name: String) -> String? {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin"
        for directory in path.split(separator: ":") {
            let candidate = "\(directory)/\(name)"
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        return nil
    }
}
