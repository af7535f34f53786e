import Foundation
import TestSupport

/// A redis-server of the test's own, on a free port of 127.0.0.1, with its
/// data in a temporary directory and persistence on (`appendonly yes`,
/// `appendfsync always`), so that tests may stop and restart it.
final class SpawnedRedis: @unchecked Sendable {
    // @unchecked: used by one test at a time, from one task.
    let port: Int
    let password: String?
    let directory: TemporaryDirectory
    private var server: ChildProcess?

    init(password: String? = nil) throws {
        port = try freePort()
        self.password = password
        directory = try TemporaryDirectory()
    }

    /// `redis://[:password@]127.0.0.1:port/0`.
    var url: String {
        "redis://\(password.map { ":\($0)@" } ?? "")127.0.0.1:\(port)/0"
    }

    /// Starts the server (again, on the same port and data) and waits until
    /// it accepts connections.
    func start() async throws {
        guard let binary = TestRedis.serverBinary else {
            throw POSIXError(.ENOENT)
        }
        var arguments = [
            "--bind", "127.0.0.1", "--port", String(port), "--dir", directory.path,
            "--appendonly", "yes", "--appendfsync", "always", "--save", "",
            "--daemonize", "no", "--logfile", "\(directory.path)/redis.log",
        ]
        if let password { arguments += ["--requirepass", password] }
        let server = ChildProcess(binary, arguments)
        try server.run()
        self.server = server
        let deadline = ContinuousClock.now + .seconds(30)
        while !TCPPort.isOpen(host: "127.0.0.1", port: port) {
            guard ContinuousClock.now < deadline else {
                throw SpawnError(message: "redis-server on port \(port) did not start: \(server.text)")
            }
            try await Task.sleep(for: .milliseconds(20))
        }
    }

    /// Stops the server with the `SHUTDOWN` command (Redis flushes its
    /// append-only file and exits) and waits for it; SIGKILL after 15 s.
    ///
    /// Not SIGTERM: children of the test process inherit its blocked signal
    /// mask, and redis-server does not unblock SIGTERM.
    func stop() async {
        guard let server else { return }
        sendShutdown()
        _ = await server.wait(timeout: .seconds(15))
        self.server = nil
    }

    /// Sends `[AUTH password] SHUTDOWN` over a plain socket (RESP arrays).
    private func sendShutdown() {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        inet_pton(AF_INET, "127.0.0.1", &address.sin_addr)
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0
            }
        }
        guard connected else { return }
        func command(_ words: String...) -> String {
            "*\(words.count)\r\n" + words.map { "$\($0.utf8.count)\r\n\($0)\r\n" }.joined()
        }
        let request = (password.map { command("AUTH", $0) } ?? "") + command("SHUTDOWN")
        _ = request.withCString { send(fd, $0, strlen($0), Int32(MSG_NOSIGNAL)) }
        // Read until the server closes the connection (it has shut down).
        var buffer = [UInt8](repeating: 0, count: 256)
        var timeout = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        while recv(fd, &buffer, buffer.count, 0) > 0 {}
    }

    /// Stops the server and removes its data.
    func remove() async {
        await stop()
        directory.remove()
    }

    struct SpawnError: Error, CustomStringConvertible {
        var message: String
        var description: String { message }
    }
}
