import Dispatch
import Foundation
import GRDB
import QTasks
import Synchronization

/// A result store in an SQLite file (`sqlite:///path/results.db`), through
/// GRDB: the default for the workers, producers and `qtasks` commands of
/// one host.
///
/// Layout (created and migrated with GRDB's `DatabaseMigrator`, its
/// applied migrations in `grdb_migrations`; times in Unix seconds):
///
/// ```sql
/// CREATE TABLE qtasks_tasks (
///     uuid       TEXT NOT NULL PRIMARY KEY,
///     task_name  TEXT NOT NULL,
///     queue      TEXT NOT NULL,     -- of the latest delivery
///     status     TEXT NOT NULL,     -- new, process, retry, success, error, cancel
///     finished   INTEGER NOT NULL,  -- 1 for success, error and cancel
///     updated_at REAL NOT NULL,     -- the time of the latest event
///     expires_at REAL NOT NULL,     -- updated_at + the writer's timeToLive
///     record     TEXT NOT NULL      -- the TaskRecord's JSON form
/// );
/// CREATE TABLE qtasks_workers (
///     worker_id  TEXT NOT NULL PRIMARY KEY,
///     expires_at REAL NOT NULL,
///     heartbeat  TEXT NOT NULL      -- the WorkerHeartbeat's JSON form
/// );
/// ```
///
/// plus indexes for listing newest first, by status (other than
/// `success`: most rows, listed through the first), by task name, by
/// expiry, and over the finished records for the bound.
///
/// Writing: each ``record(_:)`` call is one `BEGIN IMMEDIATE` transaction:
/// it reads the current records of the batch's tasks, applies the events
/// with ``TaskRecord/apply(_:maxEvents:)`` and writes the records back. The
/// workers of several processes may share one file: SQLite's write lock
/// serializes their batches, none loses an update, and a writer that finds
/// the lock taken waits up to ``ResultStoreConfiguration/timeout`` (busy
/// timeout) before failing with `unavailable`. Keep the file on a local
/// disk (WAL mode needs shared memory: no network file systems).
///
/// Expiry: a record expires ``ResultStoreConfiguration/timeToLive`` after
/// its latest event, a heartbeat at its ``WorkerHeartbeat/expiresAt``.
/// Reads compare `expires_at` with the wall clock, so they never return
/// what expired; the rows themselves are deleted by writes, at most about
/// once a second per process. After each batch, finished records past
/// ``ResultStoreConfiguration/maxRecords`` are deleted, the least recently
/// updated first.
///
/// Durability: `synchronous=NORMAL` in WAL mode, so a committed batch
/// survives a crash of the process; a power loss may lose the last batches
/// (the database stays consistent). Event recording tolerates that: it is
/// a history, not the tasks themselves.
///
/// Files and memory: `results.db-wal` and `results.db-shm` beside the
/// file; the WAL is copied back every 10,000 pages (about 40 MiB) rather
/// than SQLite's 1,000, and the writer connection caches up to 16 MiB of
/// pages. At the default bound (100,000 finished records of about 1 KiB)
/// the file is some 150 MiB.
///
/// A record whose stored JSON does not decode makes reads of it throw
/// `corrupt`; a later event of that task replaces it with a new record
/// rather than failing the batch (which the worker would retry forever).
///
/// GRDB runs every statement on its own dispatch queues, off Swift's
/// cooperative pool.
public final class SQLiteResultStore: ResultStore, CustomStringConvertible {
    /// The database file's path.
    public let path: String
    /// The limits this store writes with (its busy timeout is
    /// ``ResultStoreConfiguration/timeout``).
    public let configuration: ResultStoreConfiguration
    let pool: DatabasePool
    let isClosed = Mutex(false)
    /// Unix seconds of this process's last deletion of expired rows.
    let lastSweep = Mutex<Double>(0)
    /// Expired rows are deleted at most this often per process, in seconds.
    static let sweepInterval = 1.0
    /// The finished rows as of this store's last batch (nil: count them).
    let finishedCount = Mutex<FinishedCount?>(nil)
    /// The writer connection's page cache, in KiB (SQLite's default is
    /// 2 MiB): a batch touches the table and six indexes, and with a full
    /// store the pages it needs no longer fit in 2 MiB.
    static let writerCacheKiB = 16 * 1024
    /// The WAL is copied back into the database after this many pages (of
    /// 4 KiB) rather than SQLite's 1,000: a batch of 5,000 events writes
    /// about that many, and a page that several batches change is then
    /// copied once. The `-wal` file grows to about 40 MiB.
    static let walAutocheckpointPages = 10_000

    private init(path: String, configuration: ResultStoreConfiguration, pool: DatabasePool) {
        self.path = path
        self.configuration = configuration
        self.pool = pool
    }

    public var description: String { "SQLiteResultStore(\(path))" }

    /// Opens the result store in the SQLite file at `path`, creating the file
    /// and its tables when missing (and migrating an older layout).
    /// `ResultStores.open(url:)` in QTasksResultStores calls this for
    /// `sqlite://` URLs.
    ///
    /// - Parameters:
    ///   - path: the database file; its directory must exist. Relative paths
    ///     are relative to the current directory.
    ///   - configuration: the time-to-live, the bound on finished records
    ///     and on events per record, and the busy timeout
    ///     (``ResultStoreConfiguration/timeout``: how long a write waits for
    ///     another process's). `keyPrefix` is not used.
    /// - Throws: ``ResultStoreError`` `.unavailable`, naming the path, when
    ///   the file cannot be opened or created (its directory does not exist,
    ///   no permission), is not an SQLite database, or stays locked past the
    ///   timeout.
    public static func open(
        path: String, configuration: ResultStoreConfiguration = ResultStoreConfiguration()
    ) async throws -> SQLiteResultStore {
        var grdb = Configuration()
        // GRDB takes a TimeInterval: the C boundary of SQLite's busy timeout.
        grdb.busyMode = .timeout(Seconds.double(configuration.timeout))
        grdb.label = "QTasksResults.SQLite"
        grdb.prepareDatabase { db in
            try db.execute(sql: "PRAGMA synchronous = NORMAL")
            try db.execute(sql: "PRAGMA wal_autocheckpoint = \(walAutocheckpointPages)")
            if !db.configuration.readonly {
                try db.execute(sql: "PRAGMA cache_size = -\(writerCacheKiB)")
            }
        }
        let grdbConfiguration = grdb
        // Opening reads the file and migrating writes it: on a dispatch
        // queue, not on the cooperative pool.
        let pool: DatabasePool = try await withCheckedThrowingContinuation { continuation in
            DispatchQueue.global().async {
                continuation.resume(
                    with: Result {
                        let pool: DatabasePool
                        do {
                            pool = try openPool(path: path, configuration: grdbConfiguration, timeout: configuration.timeout)
                        } catch {
                            throw openError(error, path: path, doing: "open")
                        }
                        do {
                            try migrate(pool)
                        } catch {
                            try? pool.close()
                            throw openError(error, path: path, doing: "create the result store's tables in")
                        }
                        return pool
                    })
            }
        }
        return SQLiteResultStore(path: path, configuration: configuration, pool: pool)
    }

    /// Opens the pool, trying again while another process holds the lock.
    ///
    /// Opening switches a new file to WAL mode, and SQLite answers
    /// `SQLITE_BUSY` at once, without calling the busy handler, when another
    /// process is doing the same: several workers starting together on a
    /// fresh file would fail. So the open itself is retried, with a short
    /// jittered pause, until the busy timeout.
    private static func openPool(path: String, configuration: Configuration, timeout: Duration) throws -> DatabasePool {
        let deadline = ContinuousClock.now + Seconds.clamped(timeout)
        while true {
            do {
                return try DatabasePool(path: path, configuration: configuration)
            } catch let error as DatabaseError where error.resultCode == .SQLITE_BUSY && ContinuousClock.now < deadline {
                Thread.sleep(forTimeInterval: Double.random(in: 0.005...0.025))
            }
        }
    }

    // MARK: - Reading

    /// The record of a task, unless it has none or it expired (even when
    /// the expired row is not deleted yet).
    ///
    /// - Throws: ``ResultStoreError`` `.corrupt` when the stored JSON does
    ///   not decode (the message names the task and the file),
    ///   `.unavailable` when the file cannot be read, `.closed` after
    ///   ``close()``.
    public func record(for uuid: String) async throws -> TaskRecord? {
        let path = self.path
        return try await read("read task \(uuid) from") { db in
            let now = Date().timeIntervalSince1970
            let statement = try db.cachedStatement(
                sql: "SELECT record FROM qtasks_tasks WHERE uuid = ? AND expires_at > ?")
            guard let text = try Data.fetchOne(statement, arguments: [uuid, now]) else { return nil }
            return try RecordCoding.decodeRecord(text, uuid: uuid, path: path)
        }
    }

    /// The unexpired records that match `query`, filtered in SQL: the most
    /// recently updated first, ties broken by uuid descending (as
    /// ``MemoryResultStore`` orders them), then `offset` and `limit`. A
    /// `limit` of 0 or less, or an empty set of statuses, gives none.
    ///
    /// - Throws: ``ResultStoreError`` `.corrupt` when a record of the page
    ///   does not decode, `.unavailable`, `.closed`.
    public func records(matching query: TaskRecordQuery) async throws -> [TaskRecord] {
        guard query.limit > 0, query.statuses?.isEmpty != true else {
            try checkOpen()
            return []
        }
        let path = self.path
        return try await read("list tasks in") { db in
            let (sql, arguments) = Self.listing(query, now: Date().timeIntervalSince1970)
            let rows = try Row.fetchCursor(db.cachedStatement(sql: sql), arguments: arguments)
            var records: [TaskRecord] = []
            while let row = try rows.next() {
                records.append(try RecordCoding.decodeRecord(row[1], uuid: row[0], path: path))
            }
            return records
        }
    }

    /// The SQL of a query and its arguments: the filters in SQL, newest
    /// updated first, ties broken by uuid descending (as
    /// ``MemoryResultStore``).
    static func listing(_ query: TaskRecordQuery, now: Double) -> (sql: String, arguments: StatementArguments) {
        var conditions = ["expires_at > ?"]
        var arguments: StatementArguments = [now]
        if let statuses = query.statuses {
            let names = statuses.map(\.rawValue).sorted()
            conditions.append("status IN (\(databaseQuestionMarks(count: names.count)))")
            arguments += StatementArguments(names)
            // Lets SQLite use the index of the statuses other than success.
            if !statuses.contains(.success) { conditions.append("status <> 'success'") }
        }
        if let taskName = query.taskName {
            conditions.append("task_name = ?")
            arguments += [taskName]
        }
        if let queue = query.queue {
            conditions.append("queue = ?")
            arguments += [queue]
        }
        if let since = query.since {
            conditions.append("updated_at >= ?")
            arguments += [since.timeIntervalSince1970]
        }
        if let until = query.until {
            conditions.append("updated_at < ?")
            arguments += [until.timeIntervalSince1970]
        }
        arguments += [max(0, query.limit), max(0, query.offset)]
        // The page is chosen on rowids, then its records read: when SQLite
        // must sort (several statuses), it sorts keys, not whole records.
        let sql = """
            SELECT uuid, record FROM qtasks_tasks WHERE rowid IN (
                SELECT rowid FROM qtasks_tasks WHERE \(conditions.joined(separator: " AND "))
                ORDER BY updated_at DESC, uuid DESC LIMIT ? OFFSET ?)
            ORDER BY updated_at DESC, uuid DESC
            """
        return (sql, arguments)
    }

    /// The latest heartbeat of each worker whose
    /// ``WorkerHeartbeat/expiresAt`` has not passed, by worker id.
    ///
    /// - Throws: ``ResultStoreError`` `.corrupt` when a stored heartbeat does
    ///   not decode, `.unavailable`, `.closed`.
    public func liveWorkers() async throws -> [WorkerHeartbeat] {
        let path = self.path
        return try await read("list workers in") { db in
            let now = Date().timeIntervalSince1970
            let rows = try Row.fetchCursor(
                db.cachedStatement(
                    sql: "SELECT worker_id, heartbeat FROM qtasks_workers WHERE expires_at > ? ORDER BY worker_id"),
                arguments: [now])
            var workers: [WorkerHeartbeat] = []
            while let row = try rows.next() {
                workers.append(try RecordCoding.decodeHeartbeat(row[1], workerID: row[0], path: path))
            }
            return workers
        }
    }

    // MARK: - Heartbeats

    /// Stores a worker's latest heartbeat (one row per worker id, replaced
    /// by the next one); an offline heartbeat (``WorkerHeartbeat/isOnline``
    /// false) deletes the worker's row instead.
    ///
    /// - Throws: ``ResultStoreError`` `.unavailable` when the file cannot be
    ///   written or stays locked past ``ResultStoreConfiguration/timeout``,
    ///   `.closed` after ``close()``.
    public func recordHeartbeat(_ heartbeat: WorkerHeartbeat) async throws {
        try checkOpen()
        let text = heartbeat.isOnline ? try RecordCoding.text(of: heartbeat) : nil
        try await write("record the heartbeat of worker \(heartbeat.workerID) in") { db in
            if let text {
                try db.cachedStatement(
                    sql: """
                        INSERT INTO qtasks_workers (worker_id, expires_at, heartbeat) VALUES (?, ?, ?)
                        ON CONFLICT (worker_id) DO UPDATE
                            SET expires_at = excluded.expires_at, heartbeat = excluded.heartbeat
                        """
                ).execute(arguments: [heartbeat.workerID, heartbeat.expiresAt.timeIntervalSince1970, text])
            } else {
                try db.cachedStatement(sql: "DELETE FROM qtasks_workers WHERE worker_id = ?")
                    .execute(arguments: [heartbeat.workerID])
            }
        }
    }

    // MARK: - Closing

    /// Closes the store's connections, after a write in progress; later
    /// calls throw ``ResultStoreError`` `.closed`. Calling it again does
    /// nothing. The file stays, with what was committed.
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
}
