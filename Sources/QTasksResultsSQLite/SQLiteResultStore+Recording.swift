import Foundation
import GRDB
import QTasks

extension SQLiteResultStore {
    /// Records a batch of events in one write transaction: the current
    /// records of the batch's tasks are read (with a few `IN (…)` queries;
    /// an expired one counts as missing), each task's events applied in
    /// order (``TaskRecord/apply(_:maxEvents:)``, ``TaskRecord/init(first:maxEvents:)``
    /// for a new record), and the records written back. Events with an
    /// empty uuid are skipped. Then expired rows are deleted (at most about
    /// once a second per process) and the oldest finished records past
    /// ``ResultStoreConfiguration/maxRecords``.
    ///
    /// Recording the same events twice is harmless for the outcome (the
    /// record's events list them twice).
    ///
    /// - Throws: ``ResultStoreError`` `.unavailable` when the file cannot be
    ///   written (disk full, I/O error) or stays locked by another process
    ///   past ``ResultStoreConfiguration/timeout``; `.corrupt` when SQLite
    ///   finds the database damaged; `.closed` after ``close()``. Nothing of
    ///   the batch is written then.
    public func record(_ events: [TaskEvent]) async throws {
        try checkOpen()
        let tasks = Self.group(events)
        guard !tasks.isEmpty else { return }
        let configuration = self.configuration
        _ = try await write(
            "record \(events.count) task events in", settled: { [self] count in finishedCount.withLock { $0 = count } }
        ) { [self] db in
            let now = Date().timeIntervalSince1970
            let version = try Int.fetchOne(db.cachedStatement(sql: "PRAGMA data_version"))!
            // The count of the last batch holds while no other connection
            // committed.
            var finished = finishedCount.withLock { $0 }.flatMap { $0.dataVersion == version ? $0.count : nil }
            var swept = false
            if sweepIsDue(now: now) {
                try Self.deleteExpired(db, now: now)
                swept = true
                finished = nil
            }
            let stored = try Self.storedRows(db, uuids: tasks.map(\.uuid), now: now)
            let delta = try Self.upsert(db, tasks: tasks, stored: stored, configuration: configuration)
            let count = try Self.trimFinished(
                db, count: finished.map { $0 + delta }, maxRecords: configuration.maxRecords, now: now, swept: swept)
            return FinishedCount(count: count, dataVersion: version)
        }
    }

    /// How many finished rows the table has, as of the writer connection's
    /// `PRAGMA data_version` (which changes when another connection
    /// commits): counting them is a scan of an index, so it is done again
    /// only when another process (or store) wrote since, or after expired
    /// rows were deleted.
    struct FinishedCount: Sendable {
        var count: Int
        var dataVersion: Int
    }

    /// One task's events of a batch, in order.
    struct TaskEvents {
        var uuid: String
        var events: [TaskEvent]
    }

    /// The events of each task, tasks in the order of their first event;
    /// events without a uuid left out.
    static func group(_ events: [TaskEvent]) -> [TaskEvents] {
        var tasks: [TaskEvents] = []
        var index: [String: Int] = [:]
        index.reserveCapacity(events.count / 2)
        for event in events where !event.uuid.isEmpty {
            if let position = index[event.uuid] {
                tasks[position].events.append(event)
            } else {
                index[event.uuid] = tasks.count
                tasks.append(TaskEvents(uuid: event.uuid, events: [event]))
            }
        }
        return tasks
    }

    /// Whether this process should delete expired rows now (at most once a
    /// ``sweepInterval``); marks it done.
    func sweepIsDue(now: Double) -> Bool {
        lastSweep.withLock { last in
            guard now - last >= Self.sweepInterval || now < last else { return false }
            last = now
            return true
        }
    }

    static func deleteExpired(_ db: Database, now: Double) throws {
        try db.cachedStatement(sql: "DELETE FROM qtasks_tasks WHERE expires_at <= ?").execute(arguments: [now])
        try db.cachedStatement(sql: "DELETE FROM qtasks_workers WHERE expires_at <= ?").execute(arguments: [now])
    }

    /// How many uuids one `IN (…)` query looks up. Fixed, so that one cached
    /// statement serves every chunk (the last one is padded with `''`,
    /// which no recorded task has).
    static let lookupChunk = 200

    /// A row of `qtasks_tasks` as a batch finds it.
    struct StoredRow {
        /// The record's JSON; nil when it expired (the task starts afresh).
        var record: Data?
        var finished: Bool
    }

    /// The rows of `uuids` that exist, expired ones included (their
    /// `finished` flag counts until they are replaced).
    static func storedRows(_ db: Database, uuids: [String], now: Double) throws -> [String: StoredRow] {
        let statement = try db.cachedStatement(
            sql: """
                SELECT uuid, finished, expires_at > ?, record FROM qtasks_tasks
                WHERE uuid IN (\(databaseQuestionMarks(count: lookupChunk)))
                """)
        var stored: [String: StoredRow] = [:]
        var values: [(any DatabaseValueConvertible)?] = []
        values.reserveCapacity(lookupChunk + 1)
        for start in stride(from: 0, to: uuids.count, by: lookupChunk) {
            let chunk = uuids[start..<min(start + lookupChunk, uuids.count)]
            values.removeAll(keepingCapacity: true)
            values.append(now)
            values.append(contentsOf: chunk.map { $0 as (any DatabaseValueConvertible)? })
            values.append(contentsOf: repeatElement("" as (any DatabaseValueConvertible)?, count: lookupChunk - chunk.count))
            let rows = try Row.fetchCursor(statement, arguments: StatementArguments(values))
            while let row = try rows.next() {
                let live: Bool = row[2]
                stored[row[0]] = StoredRow(record: live ? row[3] : nil, finished: row[1])
            }
        }
        return stored
    }

    /// Applies each task's events to its stored record (or a new one) and
    /// writes the records.
    ///
    /// - Returns: by how much the number of finished rows changed.
    static func upsert(
        _ db: Database, tasks: [TaskEvents], stored: [String: StoredRow], configuration: ResultStoreConfiguration
    ) throws -> Int {
        let statement = try db.cachedStatement(
            sql: """
                INSERT INTO qtasks_tasks (uuid, task_name, queue, status, finished, updated_at, expires_at, record)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT (uuid) DO UPDATE SET
                    task_name = excluded.task_name, queue = excluded.queue, status = excluded.status,
                    finished = excluded.finished, updated_at = excluded.updated_at,
                    expires_at = excluded.expires_at, record = excluded.record
                """)
        let maxEvents = configuration.maxEventsPerRecord
        let timeToLive = Seconds.double(configuration.timeToLive)
        var delta = 0
        for task in tasks {
            var events = task.events[...]
            var record: TaskRecord
            let row = stored[task.uuid]
            // A stored record that does not decode is replaced rather than
            // failing the batch: the worker would retry it forever.
            if let data = row?.record, let current = try? TaskRecordJSON.decode(data) {
                record = current
            } else {
                record = TaskRecord(first: events.removeFirst(), maxEvents: maxEvents)
            }
            for event in events { record.apply(event, maxEvents: maxEvents) }
            let updatedAt = record.updatedAt.timeIntervalSince1970
            try statement.execute(arguments: [
                record.uuid, record.taskName, record.queue, record.status.rawValue, record.isFinished,
                updatedAt, updatedAt + timeToLive, RecordCoding.text(of: record),
            ])
            delta += (record.isFinished ? 1 : 0) - (row?.finished == true ? 1 : 0)
        }
        return delta
    }

    /// Deletes the least recently updated finished records past
    /// `maxRecords` (expired ones first, when they were not just deleted).
    ///
    /// - Parameter count: the number of finished rows, when known.
    /// - Returns: the number of finished rows left.
    static func trimFinished(_ db: Database, count: Int?, maxRecords: Int, now: Double, swept: Bool) throws -> Int {
        let counting = try db.cachedStatement(sql: "SELECT COUNT(*) FROM qtasks_tasks WHERE finished = 1")
        let bound = max(0, maxRecords)
        var count = try count ?? Int.fetchOne(counting)!
        guard count > bound else { return count }
        if !swept {
            try deleteExpired(db, now: now)
            count = try Int.fetchOne(counting)!
            guard count > bound else { return count }
        }
        try db.cachedStatement(
            sql: """
                DELETE FROM qtasks_tasks WHERE rowid IN (
                    SELECT rowid FROM qtasks_tasks WHERE finished = 1 ORDER BY updated_at, uuid LIMIT ?)
                """
        ).execute(arguments: [count - bound])
        return count - db.changesCount
    }
}
