import Foundation
import TestSupport
import QTasks
import QTasksState
import QTasksStateStores
import Testing

/// The Redis the tests use: `QTASKS_REDIS_URL`, else the local default.
/// `deploy/test.sh` starts one (deploy/redis.sh) and sets
/// `QTASKS_REQUIRE_BROKER=1`, so that a missing server fails the run there
/// instead of skipping.
enum TestRedis {
    static let url = ProcessInfo.processInfo.environment["QTASKS_REDIS_URL"] ?? "redis://127.0.0.1:6379/0"
    static let required = ProcessInfo.processInfo.environment["QTASKS_REQUIRE_BROKER"] == "1"

    /// True when the Redis tests must run: the server answers, or one is required.
    static let enabled: Bool = {
        if required { return true }
        guard let components = URLComponents(string: url), let host = components.host else { return false }
        return TCPPort.isOpen(host: host, port: components.port ?? 6379)
    }()

    /// True when tests may spawn their own redis-server (restart and
    /// connection-loss tests): the binary exists, or servers are required.
    static let serverBinary: String? = {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        for directory in path.split(separator: ":") + ["/usr/bin", "/usr/sbin"] {
            let candidate = "\(directory)/redis-server"
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        return nil
    }()
    static let canSpawn = required || serverBinary != nil
}

/// The backends of the contract suite. Redis is left out (with a note on
/// stderr) when no server answers and none is required.
enum Backend: String, CaseIterable, Sendable, CustomTestStringConvertible {
    case memory
    case sqlite
    case redis

    static let available: [Backend] = {
        if TestRedis.enabled { return allCases }
        FileHandle.standardError.write(
            Data("QTasksStateTests: no Redis at \(TestRedis.url); Redis backend skipped (deploy/redis.sh start)\n".utf8)
        )
        return [.memory, .sqlite]
    }()

    /// The backends that share data between processes.
    static let shared: [Backend] = available.filter { $0 != .memory }

    var testDescription: String { rawValue }
}

/// A directory under the system's temporary directory, removed by `remove()`.
struct TemporaryDirectory: Sendable {
    let path: String

    init() throws {
        path = NSTemporaryDirectory() + "qtasks-state-tests-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    func remove() {
        try? FileManager.default.removeItem(atPath: path)
    }
}

/// A store of `backend` for one test, closed (and its files removed) after `body`.
func withStore<T>(_ backend: Backend, _ body: (any StateStore) async throws -> T) async throws -> T {
    let directory = try TemporaryDirectory()
    defer { directory.remove() }
    let url =
        switch backend {
        case .memory: "memory://"
        case .sqlite: "sqlite://\(directory.path)/state.db"
        case .redis: TestRedis.url
        }
    // Clears what the test wrote, so that the shared Redis keeps no test data.
    let store = CleaningStore(try await StateStores.open(url: url))
    do {
        let result = try await body(store)
        await store.close()
        return result
    } catch {
        await store.close()
        throw error
    }
}

/// Forwards to a store and remembers every state written through it;
/// `close()` clears them before closing the store.
struct CleaningStore: StateStore {
    let base: any StateStore
    private let written = Locked(Set<StateID>())

    init(_ base: any StateStore) { self.base = base }

    func get(_ field: String, in state: StateID) async throws -> JSONValue? {
        try await base.get(field, in: state)
    }

    func getAll(in state: StateID) async throws -> [String: JSONValue] {
        try await base.getAll(in: state)
    }

    func update(_ fields: [String: JSONValue], in state: StateID, ttl: Duration?) async throws {
        _ = written.withLock { $0.insert(state) }
        try await base.update(fields, in: state, ttl: ttl)
    }

    func delete(_ field: String, in state: StateID) async throws {
        try await base.delete(field, in: state)
    }

    func clear(_ state: StateID) async throws {
        try await base.clear(state)
    }

    func modify<T: Sendable>(
        _ state: StateID, ttl: Duration?, _ body: @escaping @Sendable (inout [String: JSONValue]) throws -> T
    ) async throws -> T {
        _ = written.withLock { $0.insert(state) }
        return try await base.modify(state, ttl: ttl, body)
    }

    func namespaces(limit: Int) async throws -> [String] {
        try await base.namespaces(limit: limit)
    }

    func keys(in namespace: String, limit: Int) async throws -> [String?] {
        try await base.keys(in: namespace, limit: limit)
    }

    func close() async {
        for state in written.withLock({ $0 }) {
            try? await base.clear(state)
        }
        await base.close()
    }
}

/// A namespace no other test (or earlier run against the same Redis) uses.
func uniqueNamespace(_ prefix: String = "Test") -> String {
    "\(prefix)\(UUID().uuidString.prefix(8))"
}


/// A TCP port on 127.0.0.1 that was free a moment ago.
func freePort() throws -> Int { try TCPPort.free() }

/// Expects `body` to throw a ``StateError`` with `code`, and returns it.
@discardableResult
func expectStateError(
    _ code: StateError.Code, sourceLocation: SourceLocation = #_sourceLocation,
    _ body: () async throws -> Void
) async -> StateError? {
    do {
        try await body()
        Issue.record("expected StateError(\(code)), got no error", sourceLocation: sourceLocation)
    } catch let error as StateError {
        #expect(error.code == code, "\(error)", sourceLocation: sourceLocation)
        return error
    } catch {
        Issue.record("expected StateError(\(code)), got \(error)", sourceLocation: sourceLocation)
    }
    return nil
}

/// A value behind a lock, for counting from `@Sendable` closures.
final class Locked<Value>: @unchecked Sendable {
    // @unchecked: `value` is only touched while `lock` is held.
    private let lock = NSLock()
    private var value: Value

    init(_ value: Value) { self.value = value }

    func withLock<T>(_ body: (inout Value) throws -> T) rethrows -> T {
        lock.lock()
        defer { lock.unlock() }
        return try body(&value)
    }
}
