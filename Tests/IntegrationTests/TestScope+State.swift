import Foundation
import TestSupport
import QTasksState
import Testing

/// The Redis the State tests use: `QTASKS_REDIS_URL`, else the local
/// default. Required (a missing server fails instead of skipping) under
/// `QTASKS_REQUIRE_BROKER=1`, as `deploy/test.sh` sets it after starting one.
enum IntegrationRedis {
    static let url = ProcessInfo.processInfo.environment["QTASKS_REDIS_URL"] ?? "redis://127.0.0.1:6379/0"

    static let enabled: Bool = {
        if ProcessInfo.processInfo.environment["QTASKS_REQUIRE_BROKER"] == "1" { return true }
        guard let components = URLComponents(string: url), let host = components.host else { return false }
        return TCPPort.isOpen(host: host, port: components.port ?? 6379)
    }()
}

/// A temporary directory for an SQLite State file, removed by `remove()`.
struct StateDirectory: Sendable {
    let path: String

    init() throws {
        path = FileManager.default.temporaryDirectory.appendingPathComponent("qtasks-it-state-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    var sqliteURL: String { "sqlite://\(path)/state.db" }

    func remove() {
        try? FileManager.default.removeItem(atPath: path)
    }
}

extension TestScope {
    /// Starts a `qtasks-example` worker on `queue` with more arguments and
    /// environment, and waits until it consumes (as ``startWorker(concurrency:prefetch:maxMessageBytes:shutdownGrace:queues:)``).
    func startWorker(
        on queue: String, concurrency: Int = 4, arguments extra: [String] = [], environment: [String: String] = [:]
    ) async throws -> ChildProcess {
        let arguments =
            ["--url", IntegrationEnvironment.url, "--concurrency", String(concurrency), "--log-level", "info", "--queue", queue]
            + extra
        let worker = try spawn(IntegrationEnvironment.workerExecutable, arguments, environment: environment)
        try await worker.waitUntilConsuming()
        return worker
    }

    /// Publishes `{"task_name": name, "args": args}` to `queue` and returns its result.
    func call(_ name: String, args: String = "[]", on queue: String) async throws -> ResultMessage {
        let uuid = UUID().uuidString.lowercased()
        try await publishTask(
            Array(#"{"uuid": "\#(uuid)", "task_name": "\#(name)", "args": \#(args)}"#.utf8), correlationID: uuid, to: queue)
        let reply = try await nextReply(timeout: 20, "the result of \(name)")
        #expect(reply.correlationID == uuid, "\(reply)")
        return reply
    }
}

/// Runs the `qtasks` CLI to its end (no `--url`: `qtasks state` takes `--state`).
func runStateCLI(_ arguments: [String], environment: [String: String] = [:], timeout: Double = 30) async throws
    -> CompletedProcess
{
    try await ChildProcess.run(IntegrationEnvironment.cliExecutable, arguments, environment: environment, timeout: timeout)
}
