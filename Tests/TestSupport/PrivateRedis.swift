import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A redis-server of the test's own, on a free port of 127.0.0.1, with its
/// data in a temporary directory and the append-only file on, for tests
/// that stop, freeze or restart Redis: doing that to the shared server
/// would disturb every test beside them. Started with ``Spawn`` (so it
/// gets default signal handling), stopped by its pid, never by name.
public final class PrivateRedis: @unchecked Sendable {
    // @unchecked: used from one test at a time; `pid` only changes in
    // start() and stop(), which the test calls in sequence.
    public let port: Int
    public let directory: String
    /// `requirepass`, when the server has one.
    public let password: String?
    private var pid: pid_t?

    /// The server binary, when installed.
    public static let binary: String? = ["/usr/bin/redis-server", "/usr/sbin/redis-server", "/usr/local/bin/redis-server"]
        .first { FileManager.default.isExecutableFile(atPath: $0) }

    /// - Parameter password: the server's `requirepass`; nil: none.
    public init(password: String? = nil) throws {
        self.password = password
        port = try TCPPort.free()
        directory = NSTemporaryDirectory() + "qtasks-private-redis-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    }

    /// `redis://[:password@]127.0.0.1:<port>/0`.
    public var url: String { "redis://\(password.map { ":\($0)@" } ?? "")127.0.0.1:\(port)/0" }
    /// ``url`` with the password as `***`.
    public var redactedURL: String { "redis://\(password == nil ? "" : ":***@")127.0.0.1:\(port)/0" }

    /// Starts the server (again, on the same port and data) and waits until
    /// it accepts connections (at most 60 s: a loaded machine may be slow
    /// to start it, and a server that starts returns at once).
    public func start() async throws {
        guard let binary = Self.binary else { throw PrivateRedisError("redis-server is not installed") }
        let arguments = [
            "--bind", "127.0.0.1", "--port", String(port), "--dir", directory, "--appendonly", "yes",
            "--save", "", "--daemonize", "no", "--logfile", "\(directory)/redis.log",
        ] + (password.map { ["--requirepass", $0] } ?? [])
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
        switch Spawn.start(binary, arguments, environment: ProcessInfo.processInfo.environment, actions: &actions) {
        case .success(let pid): self.pid = pid
        case .failure(let error): throw PrivateRedisError("cannot start redis-server: \(error)")
        }
        let deadline = ContinuousClock.now + .seconds(60)
        while !TCPPort.isOpen(host: "127.0.0.1", port: port, timeout: 0.2) {
            guard ContinuousClock.now < deadline else { throw PrivateRedisError("redis-server on port \(port) did not start") }
            try await Task.sleep(for: .milliseconds(20))
        }
    }

    /// SIGTERM (Redis writes its append-only file and exits), then waits
    /// for the process; SIGKILL after 10 s.
    public func stop() async {
        guard let pid else { return }
        self.pid = nil
        kill(pid, SIGCONT)  // a frozen server cannot handle SIGTERM
        kill(pid, SIGTERM)
        let deadline = ContinuousClock.now + .seconds(10)
        var status: Int32 = 0
        while waitpid(pid, &status, WNOHANG) == 0 {
            if ContinuousClock.now > deadline {
                kill(pid, SIGKILL)
                waitpid(pid, &status, 0)
                return
            }
            try? await Task.sleep(for: .milliseconds(20))
        }
    }

    /// SIGSTOP: the server keeps its connections but answers nothing.
    public func freeze() {
        if let pid { kill(pid, SIGSTOP) }
    }

    /// SIGCONT after ``freeze()``.
    public func thaw() {
        if let pid { kill(pid, SIGCONT) }
    }

    /// Starts a server, runs `body` with it, then stops it and removes its
    /// data, whether `body` returned or threw: a test that fails halfway
    /// leaves no redis-server behind.
    public static func with<T>(
        password: String? = nil, isolation: isolated (any Actor)? = #isolation, _ body: (PrivateRedis) async throws -> T
    ) async throws -> T {
        let redis = try PrivateRedis(password: password)
        do {
            try await redis.start()
            let result = try await body(redis)
            await redis.remove()
            return result
        } catch {
            await redis.remove()
            throw error
        }
    }

    /// Stops the server and removes its data.
    public func remove() async {
        await stop()
        try? FileManager.default.removeItem(atPath: directory)
    }
}

public struct PrivateRedisError: Error, CustomStringConvertible {
    public var description: String
    init(_ description: String) { self.description = description }
}
