import Dispatch
import GRDB
import QTasks
import QTasksState
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// A State backend in an SQLite file (`sqlite:///path/state.db`), through
/// GRDB: the embedded default for the worker processes of one host.
///
/// Layout: one table, one row per state holding its whole document as JSON
/// text (keys sorted, non-ASCII as UTF-8):
///
/// ```sql
/// CREATE TABLE qtasks_state (
///     namespace  TEXT NOT NULL,
///     key        TEXT NOT NULL,     -- '' for a state without key
///     document   TEXT NOT NULL,     -- JSON object, never '{}' (empty states have no row)
///     expires_at INTEGER,           -- Unix time in ms; NULL: never
///     PRIMARY KEY (namespace, key)
/// ) WITHOUT ROWID
/// ```
///
/// Concurrency: the database is in WAL mode (readers never block the
/// writer); every write, `update` and `delete` included, is a read-modify-
/// write of the row inside a `BEGIN IMMEDIATE` transaction, so writers of
/// all processes are serialized by SQLite's write lock and none loses an
/// update. A writer that finds the lock taken waits up to
/// `StateStoreConfiguration.timeout` (busy timeout), then fails with
/// `StateError.Code.unavailable`. Several processes may open
/// the same file; keep it on a local disk (WAL needs shared memory, so no
/// network file systems).
///
/// Group commit: the writes of one store (one process) that wait while a
/// transaction runs are applied together in the next one, in the order they
/// were made, each still a read-modify-write of its row that sees the
/// earlier writes of the batch; every caller returns only after that
/// transaction's `COMMIT`. So a returned write is committed, as without
/// batching, and concurrent tasks share the cost of a transaction. A write
/// whose own change fails (a `modify` closure throwing, a non-finite number,
/// a stored document that is not JSON) fails alone and the rest of its batch
/// commits; a failed transaction (the lock still busy after the busy
/// timeout, a disk error) fails every write of the batch with the same
/// `StateError`, and none of them is written. A caller cancelled while its
/// write still waits for a transaction gets a `CancellationError` and its
/// write is not made; once the write is in a transaction, it is committed
/// and the call returns normally.
///
/// Durability: with `synchronous=NORMAL` (the default) a committed write
/// survives a crash or kill of the process; a power loss or OS crash may
/// lose the last commits since the WAL was last synced (the database stays
/// consistent). `?synchronous=full` syncs on every commit and also survives
/// those, at the cost of an fsync per transaction (one per batch of
/// writes, see group commit).
///
/// Expiry: `expires_at` is compared with the wall clock on every read; an
/// expired row reads as empty and is replaced by the next write to it. Rows
/// that are never touched again are deleted by the first write after
/// opening and then at most once a minute per process.
///
/// GRDB runs every statement on its own dispatch queues, off Swift's
/// cooperative pool: one job on its writer queue runs transactions while
/// writes keep arriving (not one job per write). Statements are prepared once per connection (GRDB's statement
/// cache) and documents parsed with the package's JSON parser.
public final class SQLiteStateStore: StateStore, CustomStringConvertible {
    /// SQLite's `PRAGMA synchronous` level for the store's connections.
    public enum Synchronous: String, Sendable {
        /// Sync the WAL at checkpoints only: survives process crashes.
        case normal = "NORMAL"
        /// Sync the WAL on every commit: also survives power loss.
        case full = "FULL"
    }

    /// The database file's path.
    public let path: String
    private let pool: DatabasePool
    /// Stages every write and commits them in groups.
    let writer: SQLiteStateWriter
    private let isClosed = Mutex(false)

    private init(path: String, pool: DatabasePool) {
        self.path = path
        self.pool = pool
        writer = SQLiteStateWriter(pool: pool, path: path)
    }

    public var description: String { "SQLiteStateStore(\(path))" }

    /// Opens (creating if needed) the database an `sqlite://` URL names:
    /// `sqlite:///absolute/path.db`, `sqlite://relative/path.db` (relative
    /// to the current directory), optionally `?synchronous=full`; the same
    /// syntax as `StateStores.open(url:)` in `QTasksStateStores`.
    ///
    /// - Parameters:
    ///   - url: the `sqlite://` URL (percent-encode special characters).
    ///   - configuration: `StateStoreConfiguration.timeout` is the busy timeout.
    /// - Throws: `StateError.Code.invalidURL` for a URL that is
    ///   not a valid `sqlite://` URL, else as ``open(path:synchronous:configuration:)``.
    public static func open(
        url: String, configuration: StateStoreConfiguration = StateStoreConfiguration()
    ) async throws -> SQLiteStateStore {
        let location = try SQLiteLocation(parsing: url)
        return try await open(path: location.path, synchronous: location.synchronous, configuration: configuration)
    }

    /// Opens (creating if needed) the database at `path` and its table.
    ///
    /// - Parameters:
    ///   - path: the database file; its directory must exist.
    ///   - synchronous: the durability level (default ``Synchronous/normal``).
    ///   - configuration: `StateStoreConfiguration.timeout` is the busy timeout.
    /// - Throws: `StateError.Code.unavailable` when the file
    ///   cannot be opened or the lock not taken in time,
    ///   `StateError.Code.corrupted` when it is not a database.
    public static func open(
        path: String, synchronous: Synchronous = .normal,
        configuration: StateStoreConfiguration = StateStoreConfiguration()
    ) async throws -> SQLiteStateStore {
        // GRDB takes a TimeInterval: the C boundary of SQLite's busy timeout.
        try await open(
            path: path, synchronous: synchronous, configuration: configuration,
            busyMode: .timeout(Seconds.double(configuration.timeout)))
    }

    /// ``open(path:synchronous:configuration:)`` with GRDB's busy mode
    /// given: tests pass a callback to decide when a writer gives up.
    static func open(
        path: String, synchronous: Synchronous, configuration: StateStoreConfiguration,
        busyMode: Database.BusyMode
    ) async throws -> SQLiteStateStore {
        var grdb = Configuration()
        grdb.busyMode = busyMode
        grdb.label = "QTasksState.SQLite"
        let pragma = "PRAGMA synchronous = \(synchronous.rawValue)"
        grdb.prepareDatabase { db in try db.execute(sql: pragma) }
        let grdbConfiguration = grdb
        // Opening reads the file: do it on a dispatch queue, not on the
        // cooperative pool.
        let pool: DatabasePool = try await withCheckedThrowingContinuation { continuation in
            DispatchQueue.global().async {
                continuation.resume(
                    with: Result {
                        do {
                            return try Self.openPool(path: path, configuration: grdbConfiguration, timeout: configuration.timeout)
                        } catch {
                            throw Self.stateError(error, path: path, doing: "open")
                        }
                    })
            }
        }
        let store = SQLiteStateStore(path: path, pool: pool)
        do {
            try await pool.writeWithoutTransaction { db in
                try db.inTransaction(.immediate) {
                    try db.execute(
                        sql: """
                            CREATE TABLE IF NOT EXISTS qtasks_state (
                                namespace  TEXT NOT NULL,
                                key        TEXT NOT NULL,
                                document   TEXT NOT NULL,
                                expires_at INTEGER,
                                PRIMARY KEY (namespace, key)
                            ) WITHOUT ROWID;
                            CREATE INDEX IF NOT EXISTS qtasks_state_expires_at
                                ON qtasks_state (expires_at) WHERE expires_at IS NOT NULL;
                            """)
                    return .commit
                }
            }
        } catch {
            try? pool.close()
            throw Self.stateError(error, path: path, doing: "create the State table in")
        }
        return store
    }

    /// Opens the pool, trying again while another process holds the lock.
    ///
    /// Opening switches a new file to WAL mode, and SQLite answers
    /// `SQLITE_BUSY` at once, without calling the busy handler, when another
    /// process is doing the same: several workers starting together on a
    /// fresh file would fail. So the open itself is retried, with a short
    /// jittered pause, until the busy timeout.
    private static func openPool(path: String, configuration: Configuration, timeout: Duration) throws -> DatabasePool {
        let deadline = ContinuousClock.now + timeout
        while true {
            do {
                return try DatabasePool(path: path, configuration: configuration)
            } catch let error as DatabaseError where error.resultCode == .SQLITE_BUSY && ContinuousClock.now < deadline {
                usleep(UInt32.random(in: 5_000...25_000))
            }
        }
    }

    public func get(_ field: String, in state: StateID) async throws -> JSONValue? {
        try await getAll(in: state)[field]
    }

    public func getAll(in state: StateID) async throws -> [String: JSONValue] {
        try checkOpen()
        try state.validate()
        let path = self.path
        do {
            return try await pool.read { db in
                try Self.liveRow(
                    try db.cachedStatement(sql: Self.selectSQL), state, path: path, now: TimeToLive.nowMilliseconds()
                )?.document ?? [:]
            }
        } catch {
            throw Self.stateError(error, path: path, doing: "read state \(state) from")
        }
    }

    public func update(_ fields: [String: JSONValue], in state: StateID, ttl: Duration?) async throws {
        guard !fields.isEmpty else {
            try state.validate()
            return
        }
        try await write(state, ttl: ttl, always: true) { document in document.merge(fields) { _, new in new } }
    }

    public func delete(_ field: String, in state: StateID) async throws {
        try await write(state, ttl: nil, always: false) { document in document[field] = nil }
    }

    public func clear(_ state: StateID) async throws {
        try await write(state, ttl: nil, always: false) { document in document = [:] }
    }

    public func modify<T: Sendable>(
        _ state: StateID, ttl: Duration?, _ body: @escaping @Sendable (inout [String: JSONValue]) throws -> T
    ) async throws -> T {
        try await write(state, ttl: ttl, always: false, body)
    }

    public func namespaces(limit: Int) async throws -> [String] {
        try checkOpen()
        try StateListing.check(limit: limit)
        guard limit > 0 else { return [] }
        let path = self.path
        do {
            return try await pool.read { db in
                try String.fetchAll(
                    db,
                    sql: """
                        SELECT DISTINCT namespace FROM qtasks_state
                        WHERE expires_at IS NULL OR expires_at > ?
                        ORDER BY namespace LIMIT ?
                        """,
                    arguments: [TimeToLive.nowMilliseconds(), limit])
            }
        } catch {
            throw Self.stateError(error, path: path, doing: "list the State namespaces in")
        }
    }

    public func keys(in namespace: String, limit: Int) async throws -> [String?] {
        try checkOpen()
        try StateListing.check(namespace: namespace, limit: limit)
        guard limit > 0 else { return [] }
        let path = self.path
        do {
            // '' (the keyless state) sorts first, where the protocol wants nil.
            let keys = try await pool.read { db in
                try String.fetchAll(
                    db,
                    sql: """
                        SELECT key FROM qtasks_state
                        WHERE namespace = ? AND (expires_at IS NULL OR expires_at > ?)
                        ORDER BY key LIMIT ?
                        """,
                    arguments: [namespace, TimeToLive.nowMilliseconds(), limit])
            }
            return keys.map { $0.isEmpty ? nil : $0 }
        } catch {
            throw Self.stateError(error, path: path, doing: "list the keys of State namespace '\(namespace)' in")
        }
    }

    public func close() async {
        let wasOpen = isClosed.withLock { closed in
            defer { closed = true }
            return !closed
        }
        guard wasOpen else { return }
        let pool = self.pool
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            DispatchQueue.global().async {
                try? pool.close()
                continuation.resume()
            }
        }
    }

    // MARK: - Internals

    private func checkOpen() throws(StateError) {
        if isClosed.withLock({ $0 }) {
            throw StateError(.closed, "the SQLite State store at \(path) is closed")
        }
    }

    static let selectSQL = "SELECT document, expires_at FROM qtasks_state WHERE namespace = ? AND key = ?"

    /// The row of `state`, unless missing or expired at `now`, read with
    /// `select` (a statement of ``selectSQL``).
    static func liveRow(_ select: Statement, _ state: StateID, path: String, now: Int64) throws -> StoredRow? {
        guard let row = try GRDB.Row.fetchOne(select, arguments: [state.namespace, state.key ?? ""]) else {
            return nil
        }
        let expiresAt: Int64? = row[1]
        if let expiresAt, expiresAt <= now { return nil }
        let text: String = row[0]
        return StoredRow(document: try document(from: text, of: state, path: path), expiresAt: expiresAt)
    }

    /// Parses a stored document with the package's JSON parser (several
    /// times cheaper than `JSONDecoder`, which `StateJSON` uses).
    ///
    /// - Throws: `corrupted` when the text is not a JSON object.
    static func document(from text: String, of state: StateID, path: String) throws(StateError) -> [String: JSONValue] {
        let value: JSONValue
        do {
            value = try JSONParser.parse(text.utf8)
        } catch {
            throw StateError(
                .corrupted, "state \(state) in SQLite file \(path) is not JSON: \(String(text.prefix(80))) (\(error))")
        }
        guard case .object(let document) = value else {
            throw StateError(.corrupted, "state \(state) in SQLite file \(path) is a JSON \(value.kindName), not an object")
        }
        return document
    }

    /// The one write path: stages the write with the store's writer, which
    /// applies it in a `BEGIN IMMEDIATE` transaction (shared with the other
    /// writes waiting at that moment): reads the live document, applies
    /// `change`, and writes the row back (deleting it when empty) if it
    /// changed or `always`.
    private func write<T: Sendable>(
        _ state: StateID, ttl: Duration?, always: Bool, _ change: @escaping @Sendable (inout [String: JSONValue]) throws -> T
    ) async throws -> T {
        try checkOpen()
        try state.validate()
        let ttlMilliseconds = try ttl.map { ttl throws(StateError) in try TimeToLive.milliseconds(ttl, for: state) }
        return try await writer.write(state, ttlMilliseconds: ttlMilliseconds, always: always, change)
    }

    /// Maps a GRDB error to a `StateError`; other errors pass through.
    static func stateError(_ error: any Error, path: String, doing: String) -> any Error {
        guard let error = error as? DatabaseError else { return error }
        let text = "cannot \(doing) SQLite file \(path): \(error.message ?? "\(error.resultCode)")"
        switch error.resultCode {
        case .SQLITE_BUSY, .SQLITE_LOCKED:
            return StateError(.unavailable, text + " (still locked after the busy timeout)")
        case .SQLITE_CANTOPEN, .SQLITE_IOERR, .SQLITE_PROTOCOL:
            return StateError(.unavailable, text)
        case .SQLITE_CORRUPT, .SQLITE_NOTADB:
            return StateError(.corrupted, text)
        case .SQLITE_MISUSE where error.message?.contains("closed") == true:
            return StateError(.closed, text)
        default:
            return StateError(.rejected, text)
        }
    }
}
