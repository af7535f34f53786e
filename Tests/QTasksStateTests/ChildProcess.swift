import Foundation

/// A child process whose output is collected and whose end can be awaited
/// without blocking a thread of the cooperative pool.
final class ChildProcess: @unchecked Sendable {
    // @unchecked: `process` is configured in `init` and then only started and
    // read; the mutable fields are behind `lock`.
    let process = Process()
    private let lock = NSLock()
    /// stdout and stderr go to this file (not a pipe: Foundation's pipe
    /// readability handlers are fragile on Linux when the handle goes away).
    private let outputPath = NSTemporaryDirectory() + "qtasks-state-child-\(UUID().uuidString).log"
    private var waiter: CheckedContinuation<Int32, Never>?
    private var finishedStatus: Int32?
    private var timedOut = false

    init(_ executable: String, _ arguments: [String], environment: [String: String] = [:]) {
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        if !environment.isEmpty {
            process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        }
        _ = FileManager.default.createFile(atPath: outputPath, contents: nil)
        let output = FileHandle(forWritingAtPath: outputPath)
        process.standardOutput = output
        process.standardError = output
        process.standardInput = FileHandle.nullDevice
        process.terminationHandler = { [weak self] process in
            guard let self else { return }
            let waiter = self.lock.withLock { () -> CheckedContinuation<Int32, Never>? in
                self.finishedStatus = process.terminationStatus
                defer { self.waiter = nil }
                return self.waiter
            }
            waiter?.resume(returning: process.terminationStatus)
        }
    }

    func run() throws { try process.run() }

    deinit {
        try? FileManager.default.removeItem(atPath: outputPath)
    }

    /// Everything the process wrote to stdout and stderr so far.
    var text: String {
        (try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? ""
    }

    /// Waits for the process to end and returns its exit status; after
    /// `timeout`, kills it (SIGKILL) and returns nil.
    func wait(timeout: Duration) async -> Int32? {
        let killer = Task {
            try await Task.sleep(for: timeout)
            self.lock.withLock { self.timedOut = true }
            self.signal(SIGKILL)
        }
        let status = await withCheckedContinuation { (continuation: CheckedContinuation<Int32, Never>) in
            let finished = lock.withLock { () -> Int32? in
                if let status = finishedStatus { return status }
                waiter = continuation
                return nil
            }
            if let finished { continuation.resume(returning: finished) }
        }
        killer.cancel()
        return lock.withLock { timedOut } ? nil : status
    }

    /// Sends `signal` to the process.
    func signal(_ signal: Int32) {
        kill(process.processIdentifier, signal)
    }
}
