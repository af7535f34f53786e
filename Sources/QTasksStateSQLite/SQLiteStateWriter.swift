import GRDB
import QTasks
import QTasksState
import Synchronization

/// The one writer of an ``SQLiteStateStore``: group commit.
///
/// Every write (`update`, `delete`, `clear`, `modify`) is staged here and
/// applied by one job on GRDB's writer queue, which takes every write
/// waiting at that moment (up to ``maxBatch``) and applies them in the order
/// they were staged, each one a read-modify-write of its row, inside ONE
/// `BEGIN IMMEDIATE` transaction; the callers are resumed after the
/// `COMMIT`. Writes that arrive while a transaction runs form the next one.
/// A lone write is committed at once, as before: nothing waits for a batch
/// to fill, so batching costs no latency; under concurrency the fixed cost
/// of a transaction (the write lock, the WAL frame header and wal-index
/// update, a GRDB job and a dispatch hop) is paid once per batch instead of
/// once per write.
///
/// The contract holds per write: a write that returned is committed (its
/// transaction's `COMMIT` succeeded); each write reads its row inside the
/// transaction, after the earlier writes of the batch, so none loses an
/// update, within the process or across processes (SQLite's write lock
/// still serializes the transactions of every connection to the file).
///
/// Failures:
/// - a write whose own change fails (its `modify` closure throws, a
///   non-finite number, a stored document that is not JSON) fails alone:
///   nothing of it was written, the others of the batch commit;
/// - a statement of one write failing while SQLite keeps the transaction
///   open (statement atomicity: SQLite undid that statement) fails that write
///   alone too;
/// - the transaction failing (`BEGIN IMMEDIATE` still busy after the busy
///   timeout, a disk error, a failed `COMMIT`, SQLite rolling the
///   transaction back) fails every write of the batch with the same
///   `StateError`, and none of them is written.
///
/// Cancellation: a caller cancelled while its write waits to be taken into a
/// transaction gets a `CancellationError` and its write is not made; once
/// taken, the write is committed (or fails with its batch) and the caller
/// gets that outcome.
final class SQLiteStateWriter: Sendable {
    /// The most writes in one transaction: bounds how long one process
    /// holds SQLite's write lock against the others (a few milliseconds).
    static let maxBatch = 256

    /// What the writer did, for tests: a store's transactions and the writes
    /// in them.
    struct Statistics: Sendable, Equatable {
        /// Transactions committed.
        var transactions = 0
        /// Writes in committed transactions (each caller resumed with
        /// success or its own error).
        var writes = 0
        /// Transactions that failed as a whole, and their writes.
        var failedTransactions = 0
        var failedWrites = 0
        /// The most writes one transaction (committed or failed) held.
        var largestBatch = 0
        /// Writes staged and not yet taken into a transaction.
        var pending = 0
        /// Writes in the transaction being run (0 between transactions).
        var inFlight = 0
    }

    private struct Queue: ~Copyable {
        var pending: [any StagedWrite] = []
        /// True while a drain job is scheduled or running.
        var running = false
        var statistics = Statistics()
    }

    private let pool: DatabasePool
    private let path: String
    private let queue = Mutex(Queue())
    /// Wall-clock ms of this process's last sweep of expired rows (0: none
    /// yet). Only the writer job reads and writes it.
    private let lastSweep = Mutex<Int64>(0)
    private static let sweepInterval: Int64 = 60_000

    init(pool: DatabasePool, path: String) {
        self.pool = pool
        self.path = path
    }

    var statistics: Statistics {
        queue.withLock { queue in
            var statistics = queue.statistics
            statistics.pending = queue.pending.count
            return statistics
        }
    }

    /// Stages `change` of `state` and returns once its transaction
    /// committed (or the write failed).
    func write<T: Sendable>(
        _ state: StateID, ttlMilliseconds: Int64?, always: Bool,
        _ change: @escaping @Sendable (inout [String: JSONValue]) throws -> T
    ) async throws -> T {
        let write = Write(state: state, ttlMilliseconds: ttlMilliseconds, always: always, change: change)
        return try await withTaskCancellationHandler {
            try await withUnsafeThrowingContinuation { continuation in
                write.continuation = continuation
                stage(write)
            }
        } onCancel: {
            cancel(write)
        }
    }

    private func stage(_ write: any StagedWrite) {
        enum Next { case nothing, drain, cancelled }
        let next: Next = queue.withLock { queue in
            if write.phase == .cancelled { return .cancelled }
            write.phase = .pending
            queue.pending.append(write)
            if queue.running { return .nothing }
            queue.running = true
            return .drain
        }
        switch next {
        case .nothing: break
        case .cancelled: write.fail(CancellationError())
        case .drain: pool.asyncWriteWithoutTransaction { db in self.drain(db) }
        }
    }

    private func cancel(_ write: any StagedWrite) {
        let resume: Bool = queue.withLock { queue in
            switch write.phase {
            case .new:
                // stage() has not run yet: it will see this and resume.
                write.phase = .cancelled
                return false
            case .pending:
                write.phase = .cancelled
                queue.pending.removeAll { $0 === write }
                return true
            case .taken, .cancelled:
                return false
            }
        }
        if resume { write.fail(CancellationError()) }
    }

    /// The writer job, on GRDB's writer queue: runs transactions until no
    /// write is waiting.
    private func drain(_ db: Database) {
        while true {
            let batch: [any StagedWrite] = queue.withLock { queue in
                guard !queue.pending.isEmpty else {
                    queue.running = false
                    return []
                }
                let count = min(queue.pending.count, Self.maxBatch)
                let batch = Array(queue.pending.prefix(count))
                queue.pending.removeFirst(count)
                for write in batch { write.phase = .taken }
                queue.statistics.inFlight = count
                return batch
            }
            guard !batch.isEmpty else { return }
            let failure = run(batch, db)
            queue.withLock { queue in
                queue.statistics.inFlight = 0
                queue.statistics.largestBatch = max(queue.statistics.largestBatch, batch.count)
                if failure == nil {
                    queue.statistics.transactions += 1
                    queue.statistics.writes += batch.count
                } else {
                    queue.statistics.failedTransactions += 1
                    queue.statistics.failedWrites += batch.count
                }
            }
            for write in batch {
                if let failure {
                    write.fail(failure)
                } else {
                    write.finish()
                }
            }
        }
    }

    /// One transaction for `batch`. Returns the error that failed it as a
    /// whole (already a `StateError` when it came from SQLite), or nil when
    /// it committed (each write then holds its own outcome).
    ///
    /// `BEGIN IMMEDIATE` and `COMMIT` are cached statements, like the
    /// writes' own: GRDB's `inTransaction` prepares both anew each time,
    /// which cost more than a small batch's writes.
    private func run(_ batch: [any StagedWrite], _ db: Database) -> (any Error)? {
        do {
            try db.cachedStatement(sql: "BEGIN IMMEDIATE").execute()
        } catch {
            return batchError(error, batch)
        }
        do {
            // The clock is read under the lock: the wait for it may have
            // been long.
            let now = TimeToLive.nowMilliseconds()
            let sweep = lastSweep.withLock { last in
                guard now - last >= Self.sweepInterval else { return false }
                last = now
                return true
            }
            if sweep {
                try db.execute(sql: "DELETE FROM qtasks_state WHERE expires_at <= ?", arguments: [now])
            }
            var context = try BatchContext(db: db, path: path, now: now)
            for write in batch {
                try write.apply(&context)
            }
            try db.cachedStatement(sql: "COMMIT").execute()
            return nil
        } catch {
            // SQLite may have rolled back already (a full disk, an I/O
            // error); a COMMIT that failed leaves the transaction open.
            if db.isInsideTransaction {
                try? db.execute(sql: "ROLLBACK")
            }
            return batchError(error, batch)
        }
    }

    private func batchError(_ error: any Error, _ batch: [any StagedWrite]) -> any Error {
        guard let error = error as? DatabaseError else { return error }
        return SQLiteStateStore.stateError(
            error, path: path,
            doing: batch.count == 1
                ? "write state \(batch[0].state) to" : "write \(batch.count) states (one transaction) to")
    }
}

/// Where a staged write is; changed under the writer's lock only.
enum WritePhase {
    /// Created, not yet staged.
    case new
    /// Waiting to be taken into a transaction.
    case pending
    /// In a transaction: it will be committed or fail with its batch.
    case taken
    /// The caller was cancelled before the write was taken.
    case cancelled
}

/// A write waiting for, or inside, a transaction of the writer.
protocol StagedWrite: AnyObject, Sendable {
    var state: StateID { get }
    /// Guarded by the writer's lock.
    var phase: WritePhase { get set }
    /// Applies the write inside the open transaction and keeps its own
    /// outcome. Throws only what fails the whole transaction.
    func apply(_ context: inout BatchContext) throws
    /// Resumes the caller with the outcome `apply` kept (the transaction
    /// committed).
    func finish()
    /// Resumes the caller with `error` (its batch failed, or it was
    /// cancelled before being taken).
    func fail(_ error: any Error)
}

/// A staged write returning `T`.
///
/// `@unchecked Sendable`: `continuation` is set before the write is staged
/// (the writer's lock orders it before any read), `phase` is guarded by the
/// writer's lock, `outcome` is only touched by the writer job.
private final class Write<T: Sendable>: StagedWrite, @unchecked Sendable {
    let state: StateID
    let ttlMilliseconds: Int64?
    let always: Bool
    let change: @Sendable (inout [String: JSONValue]) throws -> T
    var phase = WritePhase.new
    var continuation: UnsafeContinuation<T, any Error>?
    private var outcome: Result<T, any Error>?

    init(
        state: StateID, ttlMilliseconds: Int64?, always: Bool,
        change: @escaping @Sendable (inout [String: JSONValue]) throws -> T
    ) {
        self.state = state
        self.ttlMilliseconds = ttlMilliseconds
        self.always = always
        self.change = change
    }

    func apply(_ context: inout BatchContext) throws {
        let current: StoredRow?
        do {
            current = try context.row(of: state)
        } catch {
            // A document that is not JSON, or the read failing alone.
            outcome = .failure(try context.ownFailure(error, of: state))
            return
        }
        var document = current?.document ?? [:]
        let result: T
        do {
            result = try change(&document)
        } catch {
            // Nothing of this write was written: it fails alone, with its
            // closure's error unchanged.
            outcome = .failure(error)
            return
        }
        if always || document != current?.document ?? [:] {
            do {
                try context.store(document, of: state, ttlMilliseconds: ttlMilliseconds, current: current)
            } catch {
                outcome = .failure(try context.ownFailure(error, of: state))
                return
            }
        }
        outcome = .success(result)
    }

    func finish() {
        continuation!.resume(with: outcome!)
    }

    func fail(_ error: any Error) {
        continuation!.resume(throwing: error)
    }
}

/// A live row as a write sees it.
struct StoredRow {
    var document: [String: JSONValue]
    var expiresAt: Int64?
}

/// What the writes of one transaction share: the statements (prepared once
/// per connection, GRDB's statement cache), the clock, and the rows the
/// batch already read or wrote, so that several writes to one state in a
/// batch read and parse its document once.
struct BatchContext {
    let db: Database
    let path: String
    let now: Int64
    private let select: Statement
    private let upsert: Statement
    private let remove: Statement
    /// Rows this transaction read or wrote: `.some(nil)` is "no live row".
    private var rows: [StateID: StoredRow?] = [:]

    init(db: Database, path: String, now: Int64) throws {
        self.db = db
        self.path = path
        self.now = now
        select = try db.cachedStatement(sql: SQLiteStateStore.selectSQL)
        upsert = try db.cachedStatement(
            sql: """
                INSERT INTO qtasks_state (namespace, key, document, expires_at) VALUES (?, ?, ?, ?)
                ON CONFLICT (namespace, key) DO UPDATE
                    SET document = excluded.document, expires_at = excluded.expires_at
                """)
        remove = try db.cachedStatement(sql: "DELETE FROM qtasks_state WHERE namespace = ? AND key = ?")
    }

    /// The live row of `state` as this transaction sees it.
    mutating func row(of state: StateID) throws -> StoredRow? {
        if let row = rows[state] { return row }
        let row = try SQLiteStateStore.liveRow(select, state, path: path, now: now)
        rows[state] = .some(row)
        return row
    }

    /// Writes `document` as the row of `state` (deleting the row when it is
    /// empty).
    mutating func store(
        _ document: [String: JSONValue], of state: StateID, ttlMilliseconds: Int64?, current: StoredRow?
    ) throws {
        // Forget the row first: if the statement fails, the next write of
        // this state in the batch reads it again.
        rows[state] = nil
        if document.isEmpty {
            try remove.execute(arguments: [state.namespace, state.key ?? ""])
            rows[state] = .some(nil)
        } else {
            let text = try StateJSON.text(of: document, in: state)
            let expiresAt = ttlMilliseconds.map { now + $0 } ?? current?.expiresAt
            try upsert.execute(arguments: [state.namespace, state.key ?? "", text, expiresAt])
            rows[state] = .some(StoredRow(document: document, expiresAt: expiresAt))
        }
    }

    /// `error`, from one write's read or statement, as that write's own
    /// failure; rethrown when it fails the whole transaction instead: SQLite
    /// rolled the transaction back, or an error that may leave it unusable
    /// (a full disk, an I/O error, a lock, memory).
    func ownFailure(_ error: any Error, of state: StateID) throws -> any Error {
        guard let databaseError = error as? DatabaseError else { return error }
        switch databaseError.resultCode {
        case .SQLITE_FULL, .SQLITE_IOERR, .SQLITE_BUSY, .SQLITE_LOCKED, .SQLITE_NOMEM, .SQLITE_CORRUPT,
            .SQLITE_NOTADB, .SQLITE_CANTOPEN, .SQLITE_PROTOCOL, .SQLITE_READONLY, .SQLITE_INTERRUPT, .SQLITE_ABORT,
            .SQLITE_MISUSE:
            throw error
        default:
            guard db.isInsideTransaction else { throw error }
            return SQLiteStateStore.stateError(error, path: path, doing: "write state \(state) to")
        }
    }
}
