import CommandSupport
import Foundation
import Testing

/// Broker and State URLs from files (`--url-file`, `QTASKS_URL_FILE`), so
/// that passwords stay out of process lists and environments.
struct SecretURLTests {
    private func file(_ content: String) throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("qtasks-url-\(UUID().uuidString)").path
        try content.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    @Test func theOrderIsFlagFileVariableVariableFile() throws {
        let fromFile = try file("amqp://u:file@h/%2F\n")
        let fromVariableFile = try file("  amqp://u:varfile@h/%2F  \n")
        defer {
            try? FileManager.default.removeItem(atPath: fromFile)
            try? FileManager.default.removeItem(atPath: fromVariableFile)
        }
        func resolve(_ flag: String?, _ file: String?, _ environment: [String: String]) throws -> String? {
            try SecretURL.resolve(flag: flag, file: file, flagName: "--url", variable: "QTASKS_URL", environment: environment)
        }
        let environment = ["QTASKS_URL": "amqp://u:var@h/%2F", "QTASKS_URL_FILE": fromVariableFile]
        #expect(try resolve("amqp://u:flag@h/%2F", nil, environment) == "amqp://u:flag@h/%2F")
        #expect(try resolve(nil, fromFile, environment) == "amqp://u:file@h/%2F")
        #expect(try resolve(nil, nil, environment) == "amqp://u:var@h/%2F")
        #expect(try resolve(nil, nil, ["QTASKS_URL_FILE": fromVariableFile]) == "amqp://u:varfile@h/%2F")
        #expect(try resolve(nil, nil, [:]) == nil)
    }

    @Test func badFilesAreUsageErrorsThatNameTheFileAndNotItsContent() throws {
        let empty = try file(" \n")
        defer { try? FileManager.default.removeItem(atPath: empty) }
        func message(_ flag: String?, _ file: String?, _ environment: [String: String] = [:]) -> String {
            do {
                _ = try SecretURL.resolve(flag: flag, file: file, flagName: "--url", variable: "QTASKS_URL", environment: environment)
                return "no error"
            } catch {
                return "\(error)"
            }
        }
        #expect(message("amqp://x", "/etc/hostname").contains("not both"))
        #expect(message(nil, "/nonexistent/qtasks-url").contains("/nonexistent/qtasks-url"))
        #expect(message(nil, empty).contains("is empty"))
        #expect(message(nil, nil, ["QTASKS_URL_FILE": "/nonexistent/x"]).contains("QTASKS_URL_FILE /nonexistent/x"))
    }
}

/// The CLI reading its broker URL from a file, against the real broker.
@Suite(.enabled(if: IntegrationEnvironment.enabled, "no RabbitMQ reachable at QTASKS_URL; deploy/test.sh starts one"),
       .timeLimit(.minutes(2)))
struct SecretURLCLITests {
    @Test func qtasksSendReadsItsURLFromAFileOrAVariableNamingOne() async throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("qtasks-url-\(UUID().uuidString)").path
        try (IntegrationEnvironment.url + "\n").write(toFile: path, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let queue = IntegrationEnvironment.uniqueQueue("urlfile")
        let byFlag = try await ChildProcess.run(
            IntegrationEnvironment.cliExecutable, ["send", "add", "1", "2", "--queue", queue, "--wait", "0", "--url-file", path])
        #expect(byFlag.termination == .exited(0), "\(byFlag)")
        // QTASKS_URL is unset in the child only if the parent's is overridden:
        // an empty QTASKS_URL counts as unset.
        let byVariable = try await ChildProcess.run(
            IntegrationEnvironment.cliExecutable, ["send", "add", "1", "2", "--queue", queue, "--wait", "0"],
            environment: ["QTASKS_URL": "", "QTASKS_URL_FILE": path])
        #expect(byVariable.termination == .exited(0), "\(byVariable)")
        let missing = try await ChildProcess.run(
            IntegrationEnvironment.cliExecutable, ["send", "add", "1", "2", "--url-file", "/nonexistent/qtasks-url"])
        #expect(missing.termination == .exited(64), "\(missing)")
        #expect(missing.stderr.contains("/nonexistent/qtasks-url"), "\(missing)")
        let both = try await ChildProcess.run(
            IntegrationEnvironment.cliExecutable,
            ["send", "add", "1", "2", "--url", IntegrationEnvironment.url, "--url-file", path])
        #expect(both.termination == .exited(64), "\(both)")
        #expect(!both.stderr.contains("guest:guest"), "a password in a usage error: \(both)")
        _ = try await ChildProcess.run(IntegrationEnvironment.cliExecutable, ["purge", queue, "--yes", "--url", IntegrationEnvironment.url])
    }
}
