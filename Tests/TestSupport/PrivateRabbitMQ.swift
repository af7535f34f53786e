import AMQP
import Foundation

/// A RabbitMQ node of the test's own, on another port, for tests that raise
/// resource alarms or restart the broker: doing that to the shared broker
/// would disturb every test running beside them. Started and stopped with
/// `deploy/rabbitmq.sh` (which stops only a node it started itself).
public struct PrivateRabbitMQ: Sendable {
    public let port: Int

    public static let repositoryRoot = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// The port of a private node: `QTASKS_PRIVATE_RABBITMQ_PORT` plus
    /// `offset` (deploy/test.sh sets it to its broker's port + 21, so that
    /// two checkouts testing with different ports never share a node), else
    /// 5693 plus `offset`. Offsets in use: 0 (AMQPTests), 1, 2, 3, 5, 6, 7,
    /// 9 and 12 (IntegrationTests).
    public static func port(offset: Int) -> Int {
        let base = ProcessInfo.processInfo.environment["QTASKS_PRIVATE_RABBITMQ_PORT"].flatMap(Int.init) ?? 5693
        return base + offset
    }

    /// True when this machine can start a node (the deploy script and the
    /// server are installed).
    public static var available: Bool {
        FileManager.default.isExecutableFile(atPath: "/usr/sbin/rabbitmq-server")
            && FileManager.default.fileExists(atPath: repositoryRoot.appendingPathComponent("deploy/rabbitmq.sh").path)
    }

    /// `amqp://guest:guest@127.0.0.1:<port>/%2F?heartbeat=5`: short
    /// heartbeats, so a lost connection is noticed within seconds.
    public var url: String { "amqp://guest:guest@127.0.0.1:\(port)/%2F?heartbeat=5" }

    public init(port: Int) {
        self.port = port
    }

    public var configuration: AMQPConfiguration {
        var configuration = AMQPConfiguration()
        configuration.port = port
        configuration.connectTimeout = .seconds(5)
        return configuration
    }

    /// Starts the node and waits until it accepts AMQP connections.
    ///
    /// - Parameter extraConfiguration: lines added to the node's
    ///   rabbitmq.conf (`QTASKS_RABBITMQ_EXTRA_CONF`), for example
    ///   `max_message_size = 1048576`.
    public static func start(port: Int, extraConfiguration: String? = nil) async throws -> PrivateRabbitMQ {
        let broker = PrivateRabbitMQ(port: port)
        try await broker.script(["start"], environment: extraConfiguration.map { ["QTASKS_RABBITMQ_EXTRA_CONF": $0] } ?? [:])
        return broker
    }

    public func stop() async {
        _ = try? await script("stop")
    }

    /// SIGKILLs the node (the server deploy/rabbitmq.sh started and every
    /// process below it, except epmd, which other nodes share), as a
    /// crash would, and waits until they are gone; ``start()`` it again
    /// after. Returns how many processes were killed.
    @discardableResult
    public func kill() async throws -> Int {
        let pidFile = Self.repositoryRoot.appendingPathComponent(".run/rabbitmq-\(port)/started.pid").path
        guard let text = try? String(contentsOfFile: pidFile, encoding: .utf8), let root = pid_t(text.trimmingCharacters(in: .whitespacesAndNewlines)),
              let rootIdentity = ProcessTree.identity(root)
        else { throw AMQPError(.connectionFailed, "no server of this script's for port \(port) (\(pidFile))") }
        let victims = ([rootIdentity] + ProcessTree.descendants(of: root)).filter { identity in
            let command = (try? String(contentsOfFile: "/proc/\(identity.pid)/comm", encoding: .utf8)) ?? ""
            return !command.hasPrefix("epmd")
        }
        for victim in victims { victim.signal(SIGKILL) }
        let deadline = ContinuousClock.now + .seconds(10)
        while victims.contains(where: \.isAlive), ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(20))
        }
        return victims.count
    }

    /// Starts the node again (after ``kill()`` or ``stop()``).
    public func start() async throws {
        try await script("start")
    }

    /// Closes, from the broker's side (`rabbitmqctl close_connection`), the
    /// connections whose client-provided name is `name`: only one test's,
    /// never the others' on the same node. Returns how many.
    public func closeConnections(named name: String, reason: String) async throws -> Int {
        let listing = try await script(["ctl", "--quiet", "list_connections", "--no-table-headers", "pid", "client_properties"])
        let pids = listing.split(separator: "\n").filter { $0.contains("\"\(name)\"") }.compactMap {
            $0.split(whereSeparator: { $0 == "\t" || $0 == " " }).first.map(String.init)
        }
        for pid in pids {
            try await ctl("close_connection", pid, reason)
        }
        return pids.count
    }

    /// `rabbitmqctl` against this node.
    public func ctl(_ arguments: String...) async throws {
        try await script(["ctl"] + arguments)
    }

    @discardableResult
    public func script(_ arguments: String...) async throws -> String {
        try await script(arguments)
    }

    @discardableResult
    public func script(_ arguments: [String], environment extra: [String: String] = [:]) async throws -> String {
        let script = Self.repositoryRoot.appendingPathComponent("deploy/rabbitmq.sh").path
        let port = self.port
        // The script runs on a thread of its own with a blocking waitpid:
        // it takes seconds, and Foundation's Process did not always report
        // the exit of a script that leaves a server running behind it.
        let (status, output) = try await withCheckedThrowingContinuation {
            (continuation: CheckedContinuation<(Int32, String), any Error>) in
            Thread {
                continuation.resume(with: Result { try Self.run(script, arguments, port: port, environment: extra) })
            }.start()
        }
        guard status == 0 else {
            throw AMQPError(.connectionFailed, "deploy/rabbitmq.sh \(arguments.joined(separator: " ")) failed (\(status)): \(output)")
        }
        return output
    }

    private static func run(_ script: String, _ arguments: [String], port: Int, environment extra: [String: String]) throws -> (Int32, String) {
        let output = FileManager.default.temporaryDirectory.appendingPathComponent("private-broker-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: output) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, output.path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        var environment = ProcessInfo.processInfo.environment
        environment["QTASKS_RABBITMQ_PORT"] = String(port)
        environment.merge(extra) { _, new in new }
        let pid: pid_t
        switch Spawn.start(script, arguments, environment: environment, actions: &actions) {
        case .success(let started):
            pid = started
        case .failure(let code):
            throw AMQPError(.connectionFailed, "cannot run \(script): \(String(cString: strerror(code.code.rawValue)))")
        }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) == -1 && errno == EINTR {}
        let text = (try? String(contentsOf: output, encoding: .utf8)) ?? ""
        let exitCode = status & 0x7f == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
        return (exitCode, text)
    }
}
