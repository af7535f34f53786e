import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// A headless Chromium driven through chromedriver: one chromedriver
/// process of the test's own, on a free port of 127.0.0.1, with one browser
/// session in a private profile. The commands are in WebDriver.swift.
///
/// Prefer ``withBrowser(isolation:_:)``, which always quits. ``quit()``
/// ends the session, then stops chromedriver and every process it started,
/// by the pids read from /proc (``ProcessTree``), never by name: other
/// tests and other checkouts may run browsers of their own. The profile,
/// chromium's HOME and chromedriver's log live in one temporary directory,
/// removed afterwards.
public final class ChromeDriver: Sendable {
    /// chromedriver's port on 127.0.0.1.
    public let port: Int
    public let sessionID: String
    /// The browser process (chromedriver's `goog:processID` capability).
    public let browserPID: pid_t?
    /// The temporary directory: `profile/`, `home/`, `chromedriver.log`.
    public let directory: URL
    let transport: WebDriverTransport
    private let driverPID: pid_t
    private let quitting = Mutex(false)

    private init(port: Int, sessionID: String, browserPID: pid_t?, directory: URL, transport: WebDriverTransport, driverPID: pid_t) {
        self.port = port
        self.sessionID = sessionID
        self.browserPID = browserPID
        self.directory = directory
        self.transport = transport
        self.driverPID = driverPID
    }

    deinit {
        // The safety net for a test that never called quit(): no session
        // end, just SIGKILL to the tree.
        if !quitting.withLock({ $0 }) {
            let tree = processes
            kill(driverPID, SIGKILL)
            var status: Int32 = 0
            _ = waitpid(driverPID, &status, 0)
            tree.forEach { $0.signal(SIGKILL) }
            try? FileManager.default.removeItem(at: directory)
        }
    }

    // MARK: Finding the browser

    /// The executables: `chromedriver` and `chromium` on PATH (Debian:
    /// chromium-driver and chromium).
    public static func executables() throws -> (driver: String, browser: String) {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin"
        func find(_ name: String) -> String? {
            path.split(separator: ":").map { "\($0)/\(name)" }.first(where: FileManager.default.isExecutableFile(atPath:))
        }
        let driver = find("chromedriver")
        let browser = find("chromium")
        guard let driver, let browser else {
            let missing = [driver == nil ? "chromedriver" : nil, browser == nil ? "chromium" : nil].compactMap { $0 }
            throw BrowserUnavailable(
                "\(missing.joined(separator: " and ")) not found on PATH: the browser tests need Debian's chromium and chromium-driver (deploy/install-deps.sh installs them)"
            )
        }
        return (driver, browser)
    }

    /// True when chromium and chromedriver are installed.
    public static var isAvailable: Bool { (try? executables()) != nil }

    /// True when `QTASKS_REQUIRE_BROWSER=1` (deploy/test.sh sets it after
    /// installing the packages): a missing browser then fails the browser
    /// tests instead of skipping them, so CI cannot pass without running
    /// them.
    public static var isRequired: Bool { ProcessInfo.processInfo.environment["QTASKS_REQUIRE_BROWSER"] == "1" }

    // MARK: Starting and quitting

    /// The browser's command line. Headless; no sandbox (the tests may run
    /// as root, where Chromium's sandbox refuses to start); no GPU; shared
    /// memory in /tmp rather than a small /dev/shm (containers); a fixed
    /// window size so that layouts and screenshots do not vary.
    static func arguments(profile: URL) -> [String] {
        [
            "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,900",
            "--no-first-run", "--no-default-browser-check", "--user-data-dir=\(profile.path)",
        ]
    }

    /// Starts chromedriver on a free port, waits until it is ready and
    /// opens a session.
    ///
    /// - Parameter timeout: seconds for chromedriver to become ready and for
    ///   the browser to start; generous, a loaded 2-core machine can take
    ///   several seconds for each.
    /// - Throws: ``BrowserUnavailable`` when chromium or chromedriver is not
    ///   installed; ``WebDriverError`` when the browser does not start.
    public static func start(timeout: Double = 60) async throws -> ChromeDriver {
        let (driver, browser) = try executables()
        let directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("qtasks-browser-\(UUID().uuidString.prefix(8).lowercased())")
        let profile = directory.appendingPathComponent("profile")
        let home = directory.appendingPathComponent("home")
        do {
            for folder in [profile, home] {
                try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
            }
            // A port probed free can be taken before chromedriver binds it;
            // chromedriver then exits at once, and another port is tried.
            var lastFailure = ""
            for _ in 1...3 {
                let port = try TCPPort.free()
                let pid = try spawn(driver, port: port, home: home, log: directory.appendingPathComponent("chromedriver.log"))
                let transport = WebDriverTransport(port: port)
                do {
                    guard try await waitUntilReady(pid: pid, port: port, transport: transport, log: directory, timeout: timeout) else {
                        lastFailure = logTail(directory)
                        continue
                    }
                    let capabilities = try await transport.send("POST", "/session", capabilities(browser: browser, profile: profile), timeout: timeout + 30)
                    guard let sessionID = capabilities["sessionId"]?.string else {
                        throw WebDriverError(error: "session not created", message: "no sessionId in \(capabilities)", command: "POST /session")
                    }
                    let browserPID = capabilities["capabilities"]?["goog:processID"]?.int.map { pid_t($0) }
                    return ChromeDriver(
                        port: port, sessionID: sessionID, browserPID: browserPID, directory: directory,
                        transport: transport, driverPID: pid)
                } catch {
                    let log = logTail(directory)
                    await terminate(driverPID: pid, tree: ProcessTree.descendants(of: pid) + ProcessTree.mentioning(directory.path + "/"))
                    guard let error = error as? WebDriverError else { throw error }
                    throw WebDriverError(error: error.error, message: "\(error.message)\nchromedriver log:\n\(log)", command: error.command)
                }
            }
            throw WebDriverError(error: "session not created", message: "chromedriver did not start on 3 free ports; its log:\n\(lastFailure)", command: "start")
        } catch {
            try? FileManager.default.removeItem(at: directory)
            throw error
        }
    }

    /// Starts a browser, runs `body` with it, and quits it whether `body`
    /// returned or threw: a test that fails halfway leaves no chromedriver
    /// or chromium behind.
    public static func withBrowser<T>(
        isolation: isolated (any Actor)? = #isolation, _ body: (ChromeDriver) async throws -> T
    ) async throws -> T {
        let browser = try await start()
        do {
            let result = try await body(browser)
            await browser.quit()
            return result
        } catch {
            await browser.quit()
            throw error
        }
    }

    /// Ends the session (chromedriver closes the browser), then stops
    /// chromedriver and whatever it started that is still running, and
    /// removes the temporary directory. Safe to call twice.
    public func quit() async {
        guard quitting.withLock({ quitting in defer { quitting = true }; return !quitting }) else { return }
        // Read while chromedriver is alive: afterwards chromium's children
        // belong to init.
        let tree = processes
        _ = try? await transport.send("DELETE", "/session/\(sessionID)", timeout: 30)
        await Self.terminate(driverPID: driverPID, tree: tree)
        try? FileManager.default.removeItem(at: directory)
    }

    // MARK: Internals

    /// What chromedriver started: its descendants, and the processes that
    /// name this browser's temporary directory (crash handlers, which
    /// detach).
    private var processes: [ProcessIdentity] {
        Array(Set(ProcessTree.descendants(of: driverPID) + ProcessTree.mentioning(directory.path + "/")))
    }

    private static func capabilities(browser: String, profile: URL) -> JSON {
        [
            "capabilities": [
                "alwaysMatch": [
                    "browserName": "chrome",
                    // A confirm() stays open until the test accepts or
                    // dismisses it, instead of being dismissed by the next
                    // command.
                    "unhandledPromptBehavior": "ignore",
                    "pageLoadStrategy": "normal",
                    "timeouts": ["pageLoad": 60_000, "script": 30_000, "implicit": 0],
                    "goog:chromeOptions": [
                        "binary": .string(browser),
                        "args": .array(arguments(profile: profile).map { .string($0) }),
                    ],
                ]
            ]
        ]
    }

    /// chromedriver with its output in `log`, no descriptor of the test
    /// but 0-2, and HOME and the XDG directories in the temporary
    /// directory: Chromium writes there (crash reports, caches), not in the
    /// user's home.
    private static func spawn(_ driver: String, port: Int, home: URL, log: URL) throws -> pid_t {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, log.path, O_WRONLY | O_CREAT | O_APPEND, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        if let closeFrom = addCloseFrom { _ = closeFrom(&actions, 3) }
        var environment = ProcessInfo.processInfo.environment
        environment["HOME"] = home.path
        environment["XDG_CONFIG_HOME"] = home.appendingPathComponent(".config").path
        environment["XDG_CACHE_HOME"] = home.appendingPathComponent(".cache").path
        switch Spawn.start(driver, ["--port=\(port)"], environment: environment, actions: &actions) {
        case .success(let pid):
            return pid
        case .failure(let error):
            throw BrowserUnavailable("cannot start \(driver): \(error)")
        }
    }

    /// glibc's `posix_spawn_file_actions_addclosefrom_np` (2.34+), which the
    /// Glibc module does not export.
    private typealias AddCloseFrom = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32
    private static let addCloseFrom: AddCloseFrom? = {
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "posix_spawn_file_actions_addclosefrom_np") else {
            return nil
        }
        return unsafeBitCast(symbol, to: AddCloseFrom.self)
    }()

    /// Waits until chromedriver logged that it listens on `port` (so the
    /// answer comes from ours, not from another server that took the
    /// port) and `/status` says ready.
    ///
    /// - Returns: false when chromedriver exited first (port taken).
    private static func waitUntilReady(pid: pid_t, port: Int, transport: WebDriverTransport, log directory: URL, timeout: Double) async throws -> Bool {
        let deadline = ContinuousClock.now + .seconds(timeout)
        let started = "was started successfully on port \(port)"
        while true {
            var status: Int32 = 0
            if waitpid(pid, &status, WNOHANG) == pid { return false }
            if logTail(directory).contains(started),
                let ready = try? await transport.send("GET", "/status", timeout: 2), ready["ready"]?.bool == true
            {
                return true
            }
            guard ContinuousClock.now < deadline else {
                throw WebDriverError(error: "timeout", message: "chromedriver not ready after \(timeout) s", command: "GET /status")
            }
            try await Task.sleep(for: .milliseconds(50))
        }
    }

    private static func logTail(_ directory: URL) -> String {
        let text = (try? String(contentsOf: directory.appendingPathComponent("chromedriver.log"), encoding: .utf8)) ?? ""
        return String(text.suffix(4000))
    }

    /// SIGTERM to chromedriver (our child: reaped here), SIGKILL after 10 s;
    /// then up to 10 s for the processes of `tree` to end by themselves
    /// (chromium does once its session or driver is gone), SIGKILL to
    /// those that did not.
    private static func terminate(driverPID: pid_t, tree: [ProcessIdentity]) async {
        kill(driverPID, SIGTERM)
        var status: Int32 = 0
        let driverDeadline = ContinuousClock.now + .seconds(10)
        while waitpid(driverPID, &status, WNOHANG) == 0 {
            if ContinuousClock.now > driverDeadline {
                kill(driverPID, SIGKILL)
                _ = waitpid(driverPID, &status, 0)
                break
            }
            try? await Task.sleep(for: .milliseconds(20))
        }
        let deadline = ContinuousClock.now + .seconds(10)
        while tree.contains(where: \.isAlive), ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(50))
        }
        tree.forEach { $0.signal(SIGKILL) }
    }
}
