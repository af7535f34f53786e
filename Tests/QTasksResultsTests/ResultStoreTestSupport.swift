import Foundation
import QTasks
import QTasksResultStores
import TestSupport
import Testing

/// The Redis the tests use: `QTASKS_REDIS_URL`, else the local default.
/// `deploy/test.sh` starts one and sets `QTASKS_REQUIRE_BROKER=1`, so that
/// a missing server fails the run there instead of skipping.
enum TestRedis {
    static let url = ProcessInfo.processInfo.environment["QTASKS_REDIS_URL"] ?? "redis://127.0.0.1:6379/0"
    static let required = ProcessInfo.processInfo.environment["QTASKS_REQUIRE_BROKER"] == "1"

    static let host: String = URLComponents(string: url)?.host ?? "127.0.0.1"
    static let port: Int = URLComponents(string: url)?.port ?? 6379
    static let database: String = {
        let path = URLComponents(string: url)?.path ?? ""
        return path.count > 1 ? String(path.dropFirst()) : "0"
    }()

    /// True when the Redis tests must run: the server answers, or one is required.
    static let enabled: Bool = required || TCPPort.isOpen(host: host, port: port)

    /// Runs `redis-cli` against the test Redis; its standard output.
    @discardableResult
    static func cli(_ arguments: [String]) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["redis-cli", "-h", host, "-p", String(port), "-n", database] + arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        let output = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return String(decoding: output, as: UTF8.self)
    }

    /// Deletes every key under `prefix:`.
    static func deleteKeys(prefix: String) throws {
        let keys = try cli(["--scan", "--pattern", "\(prefix):*"]).split(separator: "\n").map(String.init)
        for chunk in stride(from: 0, to: keys.count, by: 500) {
            try cli(["DEL"] + keys[chunk..<min(chunk + 500, keys.count)])
        }
    }
}

/// The backends of the contract suite. Redis is left out (with a note on
/// stderr) when no server answers and none is required.
enum ResultBackend: String, CaseIterable, Sendable, CustomTestStringConvertible {
    case memory
    case sqlite
    case redis

    static let available: [ResultBackend] = {
        if TestRedis.enabled { return allCases }
        FileHandle.standardError.write(
            Data("QTasksResultsTests: no Redis at \(TestRedis.url); Redis backend skipped (deploy/redis.sh start)\n".utf8))
        return [.memory, .sqlite]
    }()

    var testDescription: String { rawValue }
}

/// A store of `backend` for one test, opened by URL as workers open it,
/// closed after `body`; its SQLite file or Redis keys (under a prefix of
/// its own) are removed.
func withResultStore<T>(
    _ backend: ResultBackend, configuration: ResultStoreConfiguration = ResultStoreConfiguration(),
    _ body: (any ResultStore) async throws -> T
) async throws -> T {
    let directory = NSTemporaryDirectory() + "qtasks-results-tests-" + UUID().uuidString
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    var configuration = configuration
    configuration.keyPrefix = "qtasks-test-" + UUID().uuidString.prefix(8).lowercased()
    defer {
        try? FileManager.default.removeItem(atPath: directory)
        if backend == .redis { try? TestRedis.deleteKeys(prefix: configuration.keyPrefix) }
    }
    let url =
        switch backend {
        case .memory: "memory://"
        case .sqlite: "sqlite://\(directory)/results.db"
        case .redis: TestRedis.url
        }
    let store = try await ResultStores.open(url: url, configuration: configuration)
    do {
        let result = try await body(store)
        await store.close()
        return result
    } catch {
        await store.close()
        throw error
    }
}

/// Events of one task, with times that increase by a millisecond per event
/// from `start` (stores order by time; distinct times keep tests exact).
struct EventScript {
    let uuid: String
    let taskName: String
    let queue: String
    var time: Date
    var worker = "test-host.1.abcd"

    init(uuid: String = UUID().uuidString.lowercased(), taskName: String = "add", queue: String = "default", start: Date = Date()) {
        self.uuid = uuid
        self.taskName = taskName
        self.queue = queue
        // Whole milliseconds: every backend keeps at least that precision.
        self.time = Date(timeIntervalSince1970: (start.timeIntervalSince1970 * 1000).rounded() / 1000)
    }

    mutating func next(_ kind: TaskEvent.Kind, attempt: Int = 1) -> TaskEvent {
        time = time.addingTimeInterval(0.001)
        return TaskEvent(
            kind: kind, uuid: uuid, taskName: taskName, queue: queue, attempt: attempt, workerID: worker,
            timestamp: time, createdAt: nil, priority: nil)
    }

    mutating func received(args: [JSONValue] = [2, 3], kwargs: [String: JSONValue] = [:], attempt: Int = 1, priority: Int = 0) -> TaskEvent {
        var event = next(.received, attempt: attempt)
        event.arguments = RecordedArguments(args: args, kwargs: kwargs)
        event.priority = priority
        event.createdAt = time.addingTimeInterval(-0.5)
        return event
    }

    mutating func succeeded(_ result: JSONValue, attempt: Int = 1) -> TaskEvent {
        var event = next(.succeeded, attempt: attempt)
        event.result = result
        event.duration = .milliseconds(3)
        return event
    }

    mutating func failure(_ kind: TaskEvent.Kind, attempt: Int, message: String = "boom") -> TaskEvent {
        var event = next(kind, attempt: attempt)
        event.failure = TaskEvent.Failure(type: "TestError", message: message, traceback: "TestError: \(message)")
        event.duration = .milliseconds(4)
        return event
    }

    /// A whole successful run: received, started, succeeded.
    mutating func success(_ result: JSONValue = 5) -> [TaskEvent] {
        [received(), next(.started), succeeded(result)]
    }
}

/// Waits until `condition` holds, checking every 50 ms, for at most
/// `timeout`; false when it never did. The default is long (it costs nothing
/// when the condition holds): a starved machine (load average 15 on 2
/// cores) may need seconds for a millisecond step.
func eventually(timeout: Duration = .seconds(30), _ condition: () async throws -> Bool) async rethrows -> Bool {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if try await condition() { return true }
        try? await Task.sleep(for: .milliseconds(50))
    }
    return try await condition()
}

/// Whether two times fall within a millisecond of each other (both nil
/// counts as the same): the precision every backend keeps.
func sameMillisecond(_ a: Date?, _ b: Date?) -> Bool {
    switch (a, b) {
    case (nil, nil): return true
    case (let a?, let b?): return abs(a.timeIntervalSince(b)) < 0.001
    default: return false
    }
}
