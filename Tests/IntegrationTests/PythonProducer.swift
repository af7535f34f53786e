import Foundation
import QTasks
import Testing

/// Runs a Python script with the venv of `deploy/install-deps.sh` (pinned
/// pika, Celery, QTasks) and reads the JSON object it prints last.
enum PythonProducer {
    /// The venv's Python, with `module` importable; a test that needs it
    /// fails (not skips) without: the project's scripts install it.
    static func python(importing module: String) async throws -> String {
        let python = try #require(IntegrationEnvironment.python, "no venv Python: run deploy/install-deps.sh or set QTASKS_VENV")
        let probe = try await ChildProcess.run(python, ["-c", "import \(module)"], timeout: 30)
        try #require(probe.termination == .exited(0), "\(module) is not importable from \(python): run deploy/install-deps.sh\n\(probe)")
        return python
    }

    /// Runs `script` with `arguments`; returns its last stdout line as a
    /// JSON value.
    static func run(
        _ script: String, _ arguments: [String], importing module: String, environment: [String: String] = [:],
        timeout: Double = 60
    ) async throws -> JSONValue {
        let python = try await python(importing: module)
        var environment = environment
        environment["PYTHONIOENCODING"] = "utf-8"
        let run = try await ChildProcess.run(python, ["-c", script] + arguments, environment: environment, timeout: timeout)
        try #require(run.termination == .exited(0), "python script: \(run)")
        let last = run.stdout.split(separator: "\n").last.map(String.init) ?? ""
        return try JSONDecoder().decode(JSONValue.self, from: Data(last.utf8))
    }
}
