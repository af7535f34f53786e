import Foundation
import TestSupport
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// How a child process ended.
enum Termination: Equatable, Sendable, CustomStringConvertible {
    case exited(Int32)
    case signaled(Int32)

    init(waitStatus status: Int32) {
        // WIFEXITED / WEXITSTATUS / WTERMSIG are macros Swift cannot call.
        let signal = status & 0x7f
        self = signal == 0 ? .exited((status >> 8) & 0xff) : .signaled(signal)
    }

    var description: String {
        switch self {
        case .exited(let code): "exit status \(code)"
        case .signaled(let signal): "killed by signal \(signal)"
        }
    }
}

struct ChildProcessError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// A process a test started, with its standard output and error captured in
/// files (no pipes that could fill up and stall it).
///
/// Waiting never blocks a thread of the cooperative pool: the exit is polled
/// with `waitpid(WNOHANG)`. ``stop(grace:)`` sends SIGTERM, then SIGKILL
/// after the grace period, and reaps the process. A process still running
/// when its object goes away, or when the test executable exits, is killed
/// and reaped, so no run leaves a stray worker or a zombie behind.
final class ChildProcess: Sendable {
    let pid: pid_t
    let name: String
    let directory: URL
    private let termination = Mutex<Termination?>(nil)

    var stdoutURL: URL { directory.appendingPathComponent("stdout") }
    var stderrURL: URL { directory.appendingPathComponent("stderr") }

    /// Starts `executable` with `arguments`, the test's environment plus
    /// `environment`, stdin from /dev/null, no other inherited descriptors
    /// and default signal handling.
    init(_ executable: String, _ arguments: [String], environment: [String: String] = [:]) throws {
        guard FileManager.default.isExecutableFile(atPath: executable) else {
            throw ChildProcessError("not an executable: \(executable)")
        }
        name = URL(fileURLWithPath: executable).lastPathComponent
        directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("qtasks-it-\(name)-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, directory.appendingPathComponent("stdout").path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_addopen(&actions, 2, directory.appendingPathComponent("stderr").path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        // Not the test's sockets: a worker holding a copy of one would keep
        // that connection open after the test closed it.
        if let closeFrom = Self.addCloseFrom { _ = closeFrom(&actions, 3) }

        var merged = ProcessInfo.processInfo.environment
        merged.merge(environment) { _, new in new }
        let pid: pid_t
        switch Spawn.start(executable, arguments, environment: merged, actions: &actions) {
        case .success(let started):
            pid = started
        case .failure(let code):
            try? FileManager.default.removeItem(at: directory)
            throw ChildProcessError("posix_spawn \(executable) failed: \(String(cString: strerror(code.code.rawValue)))")
        }
        self.pid = pid
        LiveChildren.add(pid)
    }

    /// glibc's `posix_spawn_file_actions_addclosefrom_np` (2.34+), which the
    /// Glibc module does not export (it needs `_GNU_SOURCE`).
    private typealias AddCloseFrom = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32
    private static let addCloseFrom: AddCloseFrom? = {
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "posix_spawn_file_actions_addclosefrom_np") else {
            return nil
        }
        return unsafeBitCast(symbol, to: AddCloseFrom.self)
    }()

    deinit {
        // The safety net: a test that forgot to stop its process.
        if termination.withLock({ $0 }) == nil {
            kill(pid, SIGKILL)
            var status: Int32 = 0
            _ = waitpid(pid, &status, 0)
            LiveChildren.remove(pid)
        }
        try? FileManager.default.removeItem(at: directory)
    }

    /// How it ended, if it has; reaps it when it just did.
    var exitStatus: Termination? {
        termination.withLock { termination in
            if let termination { return termination }
            var status: Int32 = 0
            let result = waitpid(pid, &status, WNOHANG)
            guard result == pid else { return nil }
            termination = Termination(waitStatus: status)
            LiveChildren.remove(pid)
            return termination
        }
    }

    var isRunning: Bool { exitStatus == nil }

    /// Sends a signal (only while the process has not been reaped, so that
    /// a recycled pid is never hit).
    func signal(_ signal: Int32) {
        termination.withLock { termination in
            if termination == nil { kill(pid, signal) }
        }
    }

    /// Waits up to `timeout` seconds for the process to end.
    func waitForExit(timeout: Double) async -> Termination? {
        let deadline = ContinuousClock.now + .milliseconds(Int64(timeout * 1000))
        while ContinuousClock.now < deadline {
            if let exitStatus { return exitStatus }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return exitStatus
    }

    /// SIGTERM, then SIGKILL if it has not ended after `grace` seconds;
    /// returns how it ended. Safe to call when it already ended.
    @discardableResult
    func stop(grace: Double = 10) async -> Termination {
        if let exitStatus { return exitStatus }
        signal(SIGTERM)
        if let ended = await waitForExit(timeout: grace) { return ended }
        signal(SIGKILL)
        if let ended = await waitForExit(timeout: 10) { return ended }
        // Unkillable within 10 s: reap it blocking rather than leave a zombie.
        return termination.withLock { termination in
            var status: Int32 = 0
            _ = waitpid(pid, &status, 0)
            LiveChildren.remove(pid)
            termination = Termination(waitStatus: status)
            return termination!
        }
    }

    /// What it wrote to standard output so far.
    var standardOutput: Data { (try? Data(contentsOf: stdoutURL)) ?? Data() }
    /// What it wrote to standard error so far.
    var standardError: Data { (try? Data(contentsOf: stderrURL)) ?? Data() }
    var standardOutputText: String { String(decoding: standardOutput, as: UTF8.self) }
    var standardErrorText: String { String(decoding: standardError, as: UTF8.self) }

    /// The last lines of standard error, for failure messages.
    func stderrTail(lines: Int = 30) -> String {
        standardErrorText.split(separator: "\n", omittingEmptySubsequences: false).suffix(lines).joined(separator: "\n")
    }

    /// Runs a command to its end within `timeout` seconds (then kills it).
    static func run(
        _ executable: String, _ arguments: [String], environment: [String: String] = [:], timeout: Double = 30
    ) async throws -> CompletedProcess {
        let process = try ChildProcess(executable, arguments, environment: environment)
        let start = ContinuousClock.now
        let ended = await process.waitForExit(timeout: timeout)
        let termination = await process.stop(grace: 2)
        return CompletedProcess(
            termination: termination, timedOut: ended == nil, elapsed: ContinuousClock.now - start,
            stdout: process.standardOutputText, stderr: process.standardErrorText)
    }
}

/// The outcome of ``ChildProcess/run(_:_:environment:timeout:)``.
struct CompletedProcess: Sendable, CustomStringConvertible {
    let termination: Termination
    let timedOut: Bool
    let elapsed: Duration
    let stdout: String
    let stderr: String

    var description: String {
        "\(termination)\(timedOut ? " (timed out)" : ""), after \(elapsed)\nstdout: \(stdout)\nstderr: \(stderr)"
    }
}

/// Children still running, killed when the test executable exits normally
/// (a test that never reached its cleanup, a time limit).
enum LiveChildren {
    private static let pids = Mutex<Set<pid_t>>([])
    private static let installed = Mutex(false)

    static func add(_ pid: pid_t) {
        let install = installed.withLock { installed in
            defer { installed = true }
            return !installed
        }
        if install { atexit { LiveChildren.killAll() } }
        pids.withLock { _ = $0.insert(pid) }
    }

    static func remove(_ pid: pid_t) {
        pids.withLock { _ = $0.remove(pid) }
    }

    static func killAll() {
        for pid in pids.withLock({ $0 }) {
            kill(pid, SIGKILL)
            var status: Int32 = 0
            _ = waitpid(pid, &status, 0)
        }
    }
}

extension ChildProcess {
    /// Waits until a `qtasks-example` worker logs "worker started" (written
    /// after consume-ok); fails with its stderr when it ends or takes over
    /// 30 s.
    func waitUntilConsuming() async throws {
        do {
            try await waitUntil("the worker to log 'worker started'", timeout: 30) {
                if let ended = exitStatus {
                    throw ChildProcessError("the worker ended before it started consuming (\(ended)):\n\(stderrTail())")
                }
                return standardErrorText.contains("worker started")
            }
        } catch let error as TimeoutError {
            throw ChildProcessError("\(error)\n\(stderrTail())")
        }
    }
}
