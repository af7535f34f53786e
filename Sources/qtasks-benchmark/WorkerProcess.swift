import Foundation

/// A `qtasks-benchmark worker` child process and the lines it prints.
final class WorkerProcess: @unchecked Sendable {
    // @unchecked: `process` is only used from the benchmark's sequential
    // code; the line stream is Sendable.
    private let process = Process()
    let lines: AsyncStream<String>
    private var iterator: AsyncStream<String>.Iterator

    convenience init(
        url: String, queue: String, concurrency: Int?, prefetch: Int?, count: Int, stateURL: String? = nil,
        stateTTL: Int? = nil, resultStoreURL: String? = nil
    ) throws {
        try self.init(
            benchmarkArguments: ["worker", "--url", url, "--queue", queue, "--count", "\(count)"]
                + (concurrency.map { ["--concurrency", "\($0)"] } ?? []) + (prefetch.map { ["--prefetch", "\($0)"] } ?? [])
                + (stateURL.map { ["--state-url", $0] } ?? []) + (stateTTL.map { ["--state-ttl", "\($0)"] } ?? [])
                + (resultStoreURL.map { ["--result-store", $0] } ?? []))
    }

    /// This benchmark executable with `arguments` (a subcommand).
    convenience init(benchmarkArguments arguments: [String]) throws {
        try self.init(executable: Self.benchmarkExecutable, arguments: arguments)
    }

    /// The running benchmark's own executable.
    static var benchmarkExecutable: URL {
        URL(fileURLWithPath: ProcessInfo.processInfo.arguments[0]).resolvingSymlinksInPath()
    }

    /// Any child process whose standard output is read by lines (the
    /// dashboard row's `qtasks dashboard`).
    init(executable: URL, arguments: [String]) throws {
        process.executableURL = executable
        process.arguments = arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        let (stream, continuation) = AsyncStream<String>.makeStream()
        lines = stream
        iterator = stream.makeAsyncIterator()
        let handle = pipe.fileHandleForReading
        // A plain thread: the child's output arrives in blocking reads.
        let reader = Thread {
            var buffer = Data()
            while true {
                let chunk = handle.availableData
                if chunk.isEmpty { break }
                buffer.append(chunk)
                while let newline = buffer.firstIndex(of: UInt8(ascii: "\n")) {
                    continuation.yield(String(decoding: buffer[buffer.startIndex..<newline], as: UTF8.self))
                    buffer.removeSubrange(buffer.startIndex...newline)
                }
            }
            continuation.finish()
        }
        try process.run()
        reader.start()
    }

    var pid: Int32 { process.processIdentifier }

    /// The next line the worker prints, or nil when it exited.
    func nextLine() async -> String? {
        await iterator.next()
    }

    /// Waits for a line starting with `prefix` and returns the rest.
    func waitFor(_ prefix: String) async throws -> String {
        while let line = await nextLine() {
            if line.hasPrefix(prefix) { return String(line.dropFirst(prefix.count)).trimmingCharacters(in: .whitespaces) }
        }
        throw BenchmarkError("the worker exited before printing '\(prefix)'")
    }

    /// Resident set size now and at its peak, in MiB (`/proc/PID/status`).
    func memory() -> (current: Double, peak: Double) {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return (0, 0) }
        func field(_ name: String) -> Double {
            guard let line = status.split(separator: "\n").first(where: { $0.hasPrefix(name) }) else { return 0 }
            let kilobytes = line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first.flatMap { Double($0) } ?? 0
            return kilobytes / 1024
        }
        return (field("VmRSS:"), field("VmHWM:"))
    }

    /// SIGTERM, then waits for the graceful exit (with a `grace` in
    /// seconds: then SIGKILL, by its PID).
    func stop(grace: Double? = nil) {
        guard process.isRunning else { return }
        process.terminate()
        if let grace {
            let deadline = Date().addingTimeInterval(grace)
            while process.isRunning && Date() < deadline { usleep(20_000) }
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        }
        process.waitUntilExit()
    }
}

struct BenchmarkError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
