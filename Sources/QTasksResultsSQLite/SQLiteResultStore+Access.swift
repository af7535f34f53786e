import Foundation
import GRDB
import QTasks

extension SQLiteResultStore {
    /// Throws `closed` once ``close()`` was called.
    func checkOpen() throws(ResultStoreError) {
        if isClosed.withLock({ $0 }) {
            throw ResultStoreError(.closed, "the SQLite result store at \(path) is closed")
        }
    }

    /// Runs `body` on a reader connection (a snapshot of the database),
    /// mapping GRDB's errors.
    func read<T: Sendable>(_ doing: String, _ body: @escaping @Sendable (Database) throws -> T) async throws -> T {
        try checkOpen()
        do {
            return try await pool.read(body)
        } catch {
            throw mapped(error, doing: doing)
        }
    }

    /// Runs `body` in a `BEGIN IMMEDIATE` transaction on the writer
    /// connection (committed when it returns, rolled back when it throws),
    /// mapping GRDB's errors.
    ///
    /// Immediate: the write lock is taken before the first read, so a
    /// read-modify-write of another process cannot slip in between (a
    /// deferred transaction would fail with `SQLITE_BUSY` on upgrading
    /// instead of waiting).
    ///
    /// - Parameter settled: called on the writer's queue once the
    ///   transaction committed (with `body`'s value) or failed (nil),
    ///   before the next write starts.
    func write<T: Sendable>(
        _ doing: String, settled: (@Sendable (T?) -> Void)? = nil, _ body: @escaping @Sendable (Database) throws -> T
    ) async throws -> T {
        try checkOpen()
        do {
            return try await pool.writeWithoutTransaction { db in
                var result: T?
                do {
                    try db.inTransaction(.immediate) {
                        result = try body(db)
                        return .commit
                    }
                } catch {
                    settled?(nil)
                    throw error
                }
                settled?(result!)
                return result!
            }
        } catch {
            throw mapped(error, doing: doing)
        }
    }

    /// A GRDB error as a ``ResultStoreError`` naming the file; other errors
    /// (ours, `CancellationError`) pass through.
    func mapped(_ error: any Error, doing: String) -> any Error {
        guard let error = error as? DatabaseError else { return error }
        if isClosed.withLock({ $0 }) {
            return ResultStoreError(.closed, "the SQLite result store at \(path) is closed")
        }
        let text = "cannot \(doing) SQLite file \(path): \(Self.reason(error))"
        switch error.resultCode {
        case .SQLITE_BUSY, .SQLITE_LOCKED:
            return ResultStoreError(
                .unavailable,
                text + " (still locked by another connection after the \(Seconds.logValue(configuration.timeout)) s busy timeout)")
        case .SQLITE_CORRUPT, .SQLITE_NOTADB:
            return ResultStoreError(.corrupt, text)
        default:
            return ResultStoreError(.unavailable, text)
        }
    }

    /// An error of opening or migrating: always `unavailable` (the store
    /// cannot be used), saying what is wrong with the path when that is
    /// clear.
    static func openError(_ error: any Error, path: String, doing: String) -> any Error {
        guard let error = error as? DatabaseError else {
            return ResultStoreError(.unavailable, "cannot \(doing) SQLite file \(path): \(error)")
        }
        var text = "cannot \(doing) SQLite file \(path): \(reason(error))"
        let directory = (path as NSString).deletingLastPathComponent
        var isDirectory: ObjCBool = false
        if error.resultCode == .SQLITE_CANTOPEN {
            if !directory.isEmpty, !FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory) {
                text += " (directory \(directory) does not exist)"
            } else if !directory.isEmpty, !isDirectory.boolValue {
                text += " (\(directory) is not a directory)"
            } else if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue {
                text += " (it is a directory)"
            }
        }
        return ResultStoreError(.unavailable, text)
    }

    /// SQLite's message, else its result code.
    static func reason(_ error: DatabaseError) -> String {
        error.message ?? "\(error.resultCode)"
    }
}
