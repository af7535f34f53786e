import Foundation
import QTasks
import Testing

/// A result store of a test's own: an SQLite file in a temporary
/// directory, or a unique key prefix on the test Redis.
struct TestResultStore: Sendable {
    let url: String
    /// `--result-prefix` (Redis), nil for SQLite.
    let prefix: String?
    private let directory: StateDirectory?

    static func sqlite() throws -> TestResultStore {
        let directory = try StateDirectory()
        return TestResultStore(url: "sqlite://\(directory.path)/results.db", prefix: nil, directory: directory)
    }

    static func redis() -> TestResultStore {
        TestResultStore(url: IntegrationRedis.url, prefix: "it-\(UUID().uuidString.prefix(8).lowercased())", directory: nil)
    }

    /// `--result-store URL [--result-prefix P]`.
    var arguments: [String] {
        ["--result-store", url] + (prefix.map { ["--result-prefix", $0] } ?? [])
    }

    func remove() {
        directory?.remove()
    }
}

/// Lines of JSON objects, as `qtasks tasks --json`, `workers --json` and
/// `events --json` print them.
func jsonLines(_ text: String, sourceLocation: SourceLocation = #_sourceLocation) -> [[String: JSONValue]] {
    text.split(separator: "\n").compactMap { line in
        guard case .object(let object)? = try? JSONDecoder().decode(JSONValue.self, from: Data(line.utf8)) else {
            Issue.record("not a JSON object: \(line)", sourceLocation: sourceLocation)
            return nil
        }
        return object
    }
}

extension TestScope {
    /// Runs `qtasks` against `store` (no `--url`: the store commands take none).
    func runStoreCLI(_ arguments: [String], store: TestResultStore, timeout: Double = 30) async throws -> CompletedProcess {
        try await runCLI(arguments + store.arguments, url: nil, timeout: timeout)
    }
}
