import Foundation
import Testing

/// A worker running as a RabbitMQ user with exactly the permissions
/// docs/security.md lists for it ("Least privilege"), on the shared broker;
/// and the error when one is missing. Needs `rabbitmqctl` for that broker
/// (`deploy/rabbitmq.sh ctl`, which works when the script started it, as
/// in deploy/test.sh and CI); else the test says so and checks nothing.
@Suite(.enabled(if: IntegrationEnvironment.enabled, "no RabbitMQ reachable at QTASKS_URL; deploy/test.sh starts one"),
       .timeLimit(.minutes(3)))
struct LeastPrivilegeTests {
    private func ctl(_ arguments: [String]) async throws -> CompletedProcess {
        let script = IntegrationEnvironment.repositoryRoot.appendingPathComponent("deploy/rabbitmq.sh").path
        return try await ChildProcess.run(
            script, ["ctl"] + arguments,
            environment: ["QTASKS_RABBITMQ_PORT": String(IntegrationEnvironment.configuration.port)], timeout: 60)
    }

    /// The permissions docs/security.md gives a worker of `queue`:
    /// configure, write, read.
    static func workerPermissions(_ queue: String) -> [String] {
        let own = "\(NSRegularExpression.escapedPattern(for: queue))(\\.dlq|\\.retry\\..+)?"
        return ["^\(own)$", "^(amq\\.default|\(own))$", "^\(own)$"]
    }

    @Test func aWorkerRunsWithTheDocumentedPermissionsAndNamesAMissingOne() async throws {
        let suffix = UUID().uuidString.prefix(8).lowercased()
        let user = "lp-\(suffix)"
        let password = "pw-\(UUID().uuidString.prefix(12))"
        let queue = IntegrationEnvironment.uniqueQueue("least")
        guard try await ctl(["add_user", user, password]).termination == .exited(0) else {
            print("[skipped] LeastPrivilegeTests: no rabbitmqctl for the shared broker (a broker deploy/rabbitmq.sh did not start)")
            return
        }
        do {
            try await run(user: user, password: password, queue: queue)
        } catch {
            _ = try? await ctl(["delete_user", user])
            throw error
        }
        _ = try? await ctl(["delete_user", user])
        _ = try? await ctl(["delete_queue", queue])
        _ = try? await ctl(["delete_queue", queue + ".dlq"])
    }

    private func run(user: String, password: String, queue: String) async throws {
        let grant = try await ctl(["set_permissions", "-p", IntegrationEnvironment.configuration.virtualHost, user] + Self.workerPermissions(queue))
        #expect(grant.termination == .exited(0), "\(grant)")
        let configuration = IntegrationEnvironment.configuration
        let url = "amqp://\(user):\(password)@\(configuration.host):\(configuration.port)/\(configuration.virtualHost == "/" ? "%2F" : configuration.virtualHost)"

        let worker = try await FaultWorker.start(
            ["--state", "memory://", "--max-attempts", "2", "--retry-delay", "0.2"], url: url, queues: [queue]
        ) { executable, arguments, environment in
            try ChildProcess(executable, arguments, environment: environment)
        }
        // A result, a retry through the broker-held retry queue, a dead letter.
        let add = try await ChildProcess.run(
            IntegrationEnvironment.cliExecutable, ["send", "add", "2", "3", "--queue", queue, "--wait", "30", "--url", IntegrationEnvironment.url])
        #expect(add.termination == .exited(0) && add.stdout.contains(#""returning":5"#), "\(add)\n\(worker.stderrTail())")
        let failing = try await ChildProcess.run(
            IntegrationEnvironment.cliExecutable,
            ["send", "always_fail", "x", "--queue", queue, "--wait", "30", "--url", IntegrationEnvironment.url], timeout: 60)
        #expect(failing.termination == .exited(1), "\(failing)\n\(worker.stderrTail())")
        #expect(worker.standardOutputText.contains("always_fail attempt=2"), "\(worker.standardOutputText)")
        #expect(!worker.standardErrorText.contains("ACCESS_REFUSED"), "\(worker.stderrTail())")
        _ = await worker.stop(grace: 10)

        // Without read on its queue: the start fails, naming the queue and
        // the refusal.
        let revoke = try await ctl(
            ["set_permissions", "-p", configuration.virtualHost, user, Self.workerPermissions(queue)[0], Self.workerPermissions(queue)[1], "^$"])
        #expect(revoke.termination == .exited(0), "\(revoke)")
        let refused = try await ChildProcess.run(
            IntegrationEnvironment.workerExecutable, ["--url", url, "--queue", queue, "--state", "memory://"], timeout: 60)
        #expect(refused.termination != .exited(0), "\(refused)")
        #expect(refused.stderr.contains("403 ACCESS_REFUSED") && refused.stderr.contains("access to queue '\(queue)'"), "\(refused.stderr)")
        #expect(!refused.stderr.contains(password), "the password in a log line")
    }
}
