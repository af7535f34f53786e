import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// The dashboard row's load: a `qtasks dashboard` child process (the
/// `qtasks` executable beside the benchmark's) reading the worker's result
/// store, and the dashboard "open" against it while the worker drains:
///
/// - a client holding `GET /api/live` (server-sent events, one update a
///   second), counting the updates it receives;
/// - a client fetching `/api/overview` and `/api/tasks?limit=50` every
///   2 seconds (more than the Overview page does: it fetches both once and
///   then follows `/api/live`);
/// - optionally (`--dashboard-browser`) a headless Chromium on the
///   Overview page, which runs the page's own script.
///
/// The clients are plain blocking sockets on threads of their own, off the
/// Swift concurrency pool. Every process is stopped by its PID.
final class DashboardLoad: @unchecked Sendable {
    // @unchecked: used from the benchmark's sequential code; the client
    // threads share only `clients` (Sendable).
    private let dashboard: WorkerProcess
    private var browser: Process?
    private var browserProfile: URL?
    let port: Int
    private let clients: DashboardClients

    /// The `qtasks` executable next to this benchmark's.
    static var executable: URL {
        URL(fileURLWithPath: ProcessInfo.processInfo.arguments[0]).resolvingSymlinksInPath()
            .deletingLastPathComponent().appendingPathComponent("qtasks")
    }

    /// Starts the dashboard, waits for its address, opens the clients and
    /// waits until the live stream is connected and the first poll answered.
    init(brokerURL: String, resultStoreURL: String, queue: String, browser chromium: String?) async throws {
        dashboard = try WorkerProcess(
            executable: Self.executable,
            arguments: [
                "dashboard", "--url", brokerURL, "--result-store", resultStoreURL, "--queue", queue, "--port", "0",
                "--log-level", "warning",
            ])
        let address: String
        do {
            address = try await dashboard.waitFor("qtasks dashboard: ")
        } catch {
            throw BenchmarkError("the dashboard (\(Self.executable.path)) exited before printing its address")
        }
        // http://127.0.0.1:PORT/
        guard let portText = address.split(separator: ":").last?.split(separator: "/").first, let port = Int(portText) else {
            dashboard.stop()
            throw BenchmarkError("cannot read the dashboard's address from '\(address)'")
        }
        self.port = port
        clients = DashboardClients(port: port)
        clients.start()
        let deadline = ContinuousClock.now + .seconds(20)
        while !clients.isOpen {
            guard ContinuousClock.now < deadline else {
                stop()
                throw BenchmarkError("the dashboard's clients did not connect: \(clients.summary)")
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        do {
            if let chromium { try await openBrowser(chromium) }
        } catch {
            stop()
            throw error
        }
    }

    /// Headless Chromium on the Overview page, left running until ``stop()``.
    private func openBrowser(_ chromium: String) async throws {
        let profile = FileManager.default.temporaryDirectory.appendingPathComponent("qtasks-benchmark-chromium-\(getpid())-\(port)")
        try FileManager.default.createDirectory(at: profile, withIntermediateDirectories: true)
        browserProfile = profile
        let process = Process()
        process.executableURL = URL(fileURLWithPath: chromium)
        process.arguments = [
            "--headless=new", "--no-sandbox", "--disable-gpu", "--remote-debugging-port=0",
            "--user-data-dir=\(profile.path)", "http://127.0.0.1:\(port)/",
        ]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        browser = process
        // Until the page is loaded and follows /api/live (it then holds two
        // connections: its fetches and its event stream).
        try await Task.sleep(for: .seconds(3))
    }

    var dashboardPID: Int32 { dashboard.pid }

    /// The dashboard process's user + system CPU seconds so far.
    func cpuSeconds() -> Double { processCPUSeconds(dashboard.pid) }

    var summary: String { clients.summary + (browser != nil ? ", headless Chromium on the Overview page" : "") }

    /// Stops the browser, the clients and the dashboard, by PID.
    func stop() {
        if let browser, browser.isRunning {
            kill(browser.processIdentifier, SIGTERM)
            let deadline = Date().addingTimeInterval(5)
            while browser.isRunning && Date() < deadline { usleep(20_000) }
            if browser.isRunning { kill(browser.processIdentifier, SIGKILL) }
            browser.waitUntilExit()
        }
        browser = nil
        if let browserProfile { try? FileManager.default.removeItem(at: browserProfile) }
        browserProfile = nil
        clients.stop()
        dashboard.stop(grace: 10)
    }
}

/// The user + system CPU seconds of process `pid` (`/proc/PID/stat`
/// fields 14 and 15), 0 when it cannot be read.
func processCPUSeconds(_ pid: Int32) -> Double {
    guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
        let close = stat.lastIndex(of: ")")
    else { return 0 }
    // After "pid (comm)": field 3 (state) is the first.
    let fields = stat[stat.index(after: close)...].split(separator: " ")
    guard fields.count > 12, let user = Double(fields[11]), let system = Double(fields[12]) else { return 0 }
    return (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
}

/// The CPU seconds of process `pid`'s live threads, in nanoseconds
/// (`/proc/PID/task/*/schedstat`, first field): fine enough for a drain
/// of a few hundred tasks, where `/proc/PID/stat` counts 10 ms clock ticks.
/// Threads that exited are not counted; over a drain the worker's threads
/// (its connection threads and the concurrency pool's) stay alive.
func threadsCPUSeconds(_ pid: Int32) -> Double {
    guard let threads = try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/task") else { return 0 }
    var nanoseconds: UInt64 = 0
    for thread in threads {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/task/\(thread)/schedstat", encoding: .utf8),
            let first = text.split(separator: " ").first, let value = UInt64(first)
        else { continue }
        nanoseconds += value
    }
    return Double(nanoseconds) / 1e9
}

/// This process's own user + system CPU seconds (`getrusage`), at
/// microsecond resolution where `/proc/PID/stat` counts clock ticks (10 ms):
/// what a child reports about itself on its `drained` line.
func ownCPUSeconds() -> Double {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    func seconds(_ time: timeval) -> Double { Double(time.tv_sec) + Double(time.tv_usec) / 1e6 }
    return seconds(usage.ru_utime) + seconds(usage.ru_stime)
}

/// The live stream and the poller of ``DashboardLoad``, each on a thread.
final class DashboardClients: @unchecked Sendable {
    // @unchecked: every mutable field is behind `lock`.
    private let port: Int
    private let lock = NSLock()
    private var stopped = false
    private var liveSocket: Int32 = -1
    private var connected = false
    private var updates = 0
    private var polls = 0
    private var failures = 0
    private var lastFailure: String?
    private var threads: [Thread] = []
    private let wake = DispatchSemaphore(value: 0)
    private let done = DispatchGroup()

    static let pollInterval = 2.0

    init(port: Int) { self.port = port }

    private func locked<T>(_ body: () -> T) -> T {
        lock.lock()
        defer { lock.unlock() }
        return body()
    }

    /// The live stream is connected and one poll has completed.
    var isOpen: Bool { locked { connected && polls + failures > 0 } }

    var summary: String {
        locked {
            "\(updates) live updates received, \(polls) polls of /api/overview + /api/tasks?limit=50"
                + (failures > 0 ? ", \(failures) failed (\(lastFailure ?? ""))" : "")
        }
    }

    func start() {
        let live = Thread { [self] in
            follow()
            done.leave()
        }
        let poller = Thread { [self] in
            poll()
            done.leave()
        }
        done.enter()
        done.enter()
        threads = [live, poller]
        live.start()
        poller.start()
    }

    func stop() {
        let socket: Int32 = locked {
            stopped = true
            return liveSocket
        }
        if socket >= 0 { shutdown(socket, Int32(SHUT_RDWR)) }
        wake.signal()
        _ = done.wait(timeout: .now() + 10)
    }

    private func failed(_ text: String) {
        locked {
            failures += 1
            lastFailure = text
        }
    }

    /// `GET /api/live`, reading until stopped, counting `event: update`.
    private func follow() {
        guard let socket = Self.connect(port: port) else { return failed("cannot connect for /api/live") }
        let proceed: Bool = locked {
            liveSocket = socket
            return !stopped
        }
        defer {
            locked { liveSocket = -1 }
            Glibc.close(socket)
        }
        guard proceed, Self.send(socket, Self.request("/api/live", keepAlive: true)) else { return }
        var pending = ""
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)
        while true {
            let count = recv(socket, &buffer, buffer.count, 0)
            if count <= 0 { break }
            pending += String(decoding: buffer[0..<count], as: UTF8.self)
            if pending.hasPrefix("HTTP/") && !pending.hasPrefix("HTTP/1.1 200") {
                failed("/api/live: \(pending.prefix(while: { $0 != "\r" }))")
                return
            }
            // Complete lines only; a partial line waits for the rest.
            guard let last = pending.range(of: "\n", options: .backwards) else { continue }
            let lines = pending[..<last.upperBound]
            let found = lines.components(separatedBy: "event: update\n").count - 1
            let isConnected = lines.contains(": connected\n")
            pending = String(pending[last.upperBound...])
            locked {
                if isConnected { connected = true }
                updates += found
            }
        }
    }

    /// Both fetches every ``pollInterval`` seconds, until stopped.
    private func poll() {
        while !locked({ stopped }) {
            var ok = true
            for path in ["/api/overview", "/api/tasks?limit=50"] {
                if let failure = Self.fetch(port: port, path: path) {
                    failed(failure)
                    ok = false
                }
            }
            if ok { locked { polls += 1 } }
            _ = wake.wait(timeout: .now() + Self.pollInterval)
        }
    }

    static func request(_ path: String, keepAlive: Bool) -> String {
        "GET \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: \(keepAlive ? "text/event-stream" : "application/json")\r\n"
            + "Connection: \(keepAlive ? "keep-alive" : "close")\r\n\r\n"
    }

    /// One GET on a new connection, read to its end; nil when it answered
    /// 200, else what went wrong.
    static func fetch(port: Int, path: String) -> String? {
        guard let socket = connect(port: port) else { return "\(path): cannot connect" }
        defer { Glibc.close(socket) }
        guard send(socket, request(path, keepAlive: false)) else { return "\(path): cannot send" }
        var response: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)
        while true {
            let count = recv(socket, &buffer, buffer.count, 0)
            if count < 0 { return "\(path): read error \(errno)" }
            if count == 0 { break }
            response.append(contentsOf: buffer[0..<count])
        }
        let head = String(decoding: response.prefix(16), as: UTF8.self)
        return head.hasPrefix("HTTP/1.1 200") ? nil : "\(path): \(head.prefix(while: { $0 != "\r" }))"
    }

    static func connect(port: Int) -> Int32? {
        let socket = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard socket >= 0 else { return nil }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.connect(socket, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard result == 0 else {
            Glibc.close(socket)
            return nil
        }
        return socket
    }

    static func send(_ socket: Int32, _ text: String) -> Bool {
        var bytes = Array(text.utf8)[...]
        while !bytes.isEmpty {
            let sent = bytes.withUnsafeBytes { Glibc.send(socket, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if sent <= 0 { return false }
            bytes = bytes.dropFirst(sent)
        }
        return true
    }
}
