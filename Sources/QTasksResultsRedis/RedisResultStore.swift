import Dispatch
import Foundation
import QTasks
import QTasksState
import QTasksStateRedis

/// A result store on a Redis server (`redis://host:6379/0`) in Python
/// QTasks 1.7.3's layout, so that a QTasks producer reads our workers'
/// results with `AsyncResult(uuid).result()`: the store for a fleet.
///
/// ## Layout
///
/// Under ``ResultStoreConfiguration/keyPrefix`` (default `QueueTasks`,
/// QTasks' default app name; give a QTasks app the same `name`):
///
/// - `<prefix>:<uuid>`, a hash per task with QTasks' fields: `task_name`,
///   `priority`, `status` (`new`, `process`, `success`, `error`, `cancel`,
///   and `retry` between attempts, which QTasks treats as unfinished),
///   `args` and `kwargs` (JSON text; `[]` and `{}` when the arguments are
///   unknown, secret or truncated), `created_at` and `updated_at` (Unix
///   seconds as text), `retry` (the attempts before the latest), `returning`
///   (JSON text; `success` only), `traceback` (`error` only),
///   `cancel_reason` (`cancel` only, empty); and ours, which QTasks reads as
///   extra fields of its `Task`: `queue`, `attempt`, `worker_id`,
///   `trace_id`, `dead_letter_queue`, `error_type`, `error_message`, and
///   `qtasks_record`, the whole ``TaskRecord`` as JSON, which is what this
///   store reads back.
/// - `<prefix>:task_process`, QTasks' sorted set of running tasks: member
///   `name:uuid:priority`, score the priority, while the status is
///   `process`.
/// - `<prefix>:qtasks_index:updated` and `<prefix>:qtasks_index:finished`,
///   sorted sets of uuids scored by their record's `updated_at` in Unix
///   milliseconds: listing newest first, and the bound on finished records.
/// - `<prefix>:qtasks_worker:<worker id>`, a worker's latest heartbeat as
///   JSON (expiring with it), and `<prefix>:qtasks_index:workers`, worker ids
///   scored by the heartbeat's expiry in milliseconds.
///
/// QTasks' `get_all` reads `<prefix>:<second part of the key>` as a task, so
/// our own keys are named to make that `<prefix>:qtasks_index` or
/// `<prefix>:qtasks_worker`, which never exist: it lists no phantom tasks.
/// Events whose uuid is empty, contains `:` or is one of `task_process`,
/// `task_queue`, `qtasks_index`, `qtasks_worker` cannot be stored in this
/// layout and are ignored. A task whose name contains `:` is kept out of
/// `task_process` (QTasks splits its members on `:`).
///
/// ## Writing
///
/// ``record(_:)`` groups a batch by uuid and makes two round trips, both
/// pipelined: one `HMGET` per task (the JSON record, and the fields a QTasks
/// producer writes before publishing, so that a record it created keeps its
/// arguments, creation time and priority), then, after applying the events
/// with ``TaskRecord/apply(_:maxEvents:)`` in Swift, one write per task: a
/// short Lua script (`compareAndSetScript`) that checks the hash still
/// holds what was read and only then does the `HSET` of every field (and
/// `HDEL` of fields that no longer apply), `PEXPIRE`, the task's `ZADD`s to
/// the indexes and its `ZADD`/`ZREM` on `task_process`, all at once; and
/// for the batch `PEXPIRE` of the sorted sets, `ZREMRANGEBYSCORE` of index
/// entries older than the time-to-live and, when the batch finished tasks,
/// a short Lua script that drops the oldest finished records (hash and
/// index entries) past ``ResultStoreConfiguration/maxRecords``. No round
/// trip per event or per task. The JSON record is written and parsed by
/// hand (the ``TaskRecord`` JSON form, which `Codable` reads too), and a
/// record this store wrote and reads back unchanged (a task's next events)
/// is not parsed again: `JSONEncoder` and `JSONDecoder` were most of a
/// batch's time.
///
/// Two processes that write the same task at once (a sender's `sent` event
/// and the worker's `started`, a few milliseconds apart; two deliveries of
/// one task) do not overwrite each other: the one whose hash changed
/// between its read and its write writes nothing, reads that task again
/// and applies its events to what the other wrote (up to 50 rounds, each
/// of which means another writer's write went through). Every event of both
/// ends up in the record.
///
/// Every key has the store's time-to-live (`PEXPIRE`, renewed by each
/// write), so Redis itself expires records; reads also skip records whose
/// latest event is older than the time-to-live, as the other backends do,
/// and index entries whose hash is gone.
///
/// ## Connection and failures
///
/// One connection per store, used from one serial dispatch queue on which
/// every blocking hiredis call runs (never Swift's cooperative pool), with
/// ``ResultStoreConfiguration/timeout`` for each operation in all, counted
/// from the call (its wait for the queue, the connect, every read and write
/// and a reconnect), so a frozen server fails every call within it. A broken connection fails the operation with
/// ``ResultStoreError`` `.unavailable` (naming the URL, password redacted,
/// and hiredis' error) and is dropped; the next operation connects again, so
/// the store recovers by itself once Redis is back. An operation that finds
/// a connection which died while idle retries its first round trip once on
/// a new one (a read, or a write of whole fields and scores; a batch's
/// compare-and-set comes after its read, so it is never sent twice). A `qtasks_record` that
/// does not parse is `.corrupt` on reads; a write replaces it, starting from
/// the hash's QTasks fields.
public final class RedisResultStore: ResultStore, CustomStringConvertible, @unchecked Sendable {
    // @unchecked Sendable: `connection` and `isClosed` are read and written
    // only by blocks running on the serial `queue`; everything else is
    // immutable.
    let endpoint: RedisEndpoint
    /// The limits and key prefix the store was opened with.
    public let configuration: ResultStoreConfiguration
    let layout: RedisResultLayout
    private let queue: DispatchQueue
    fileprivate var connection: RedisConnection?
    private var isClosed = false
    /// The unfinished records written last (queue only).
    var writtenRecords = RecordCache(capacity: 10_000)

    private init(endpoint: RedisEndpoint, configuration: ResultStoreConfiguration) {
        self.endpoint = endpoint
        self.configuration = configuration
        self.layout = RedisResultLayout(prefix: configuration.keyPrefix)
        self.queue = DispatchQueue(label: "QTasksResults.Redis \(endpoint.host):\(endpoint.port)")
    }

    /// `RedisResultStore(redis://:***@host:6379/0, prefix QueueTasks)`.
    public var description: String { "RedisResultStore(\(endpoint.redactedURL), prefix \(layout.prefix))" }

    /// Opens a store and connects right away, so that a wrong host or
    /// password fails here.
    ///
    /// - Parameters:
    ///   - url: `redis://[[user]:password@]host[:port][/db]` (no TLS:
    ///     `rediss://` is refused).
    ///   - configuration: time-to-live, bound, timeout and key prefix.
    /// - Throws: ``ResultStoreError`` `.invalidURL` (password redacted; also
    ///   for a key prefix that is empty or contains `:`, which QTasks splits
    ///   its keys on) or `.unavailable` (the server cannot be reached or
    ///   refuses the password).
    public static func open(
        url: String, configuration: ResultStoreConfiguration = ResultStoreConfiguration()
    ) async throws -> RedisResultStore {
        let endpoint: RedisEndpoint
        do {
            endpoint = try RedisEndpoint(parsing: url)
        } catch {
            throw ResultStoreError(.invalidURL, error.message)
        }
        guard !configuration.keyPrefix.isEmpty, !configuration.keyPrefix.contains(":") else {
            throw ResultStoreError(
                .invalidURL,
                "'\(endpoint.redactedURL)': the key prefix must be non-empty and without ':' (got '\(configuration.keyPrefix)'); QTasks splits its keys on ':'"
            )
        }
        let store = RedisResultStore(endpoint: endpoint, configuration: configuration)
        try await store.perform(doing: "connect to") { session in
            _ = try session.pipeline([["PING"]])
        }
        return store
    }

    // MARK: - ResultStore

    /// Applies a batch of events to their tasks' records, in two pipelined
    /// round trips (see the type's documentation).
    ///
    /// - Throws: ``ResultStoreError`` `.unavailable` when Redis cannot be
    ///   reached or refuses a write, `.closed`.
    public func record(_ events: [TaskEvent]) async throws {
        var order: [String] = []
        var byUUID: [String: [TaskEvent]] = [:]
        for event in events where RedisResultLayout.isStorable(uuid: event.uuid) {
            if byUUID[event.uuid] == nil { order.append(event.uuid) }
            byUUID[event.uuid, default: []].append(event)
        }
        let uuids = order
        let grouped = byUUID
        try await perform(doing: "record \(events.count) task events in") { session in
            guard !uuids.isEmpty else { return }
            try self.write(uuids: uuids, events: grouped, session: &session)
        }
    }

    public func recordHeartbeat(_ heartbeat: WorkerHeartbeat) async throws {
        let key = layout.workerKey(heartbeat.workerID)
        let remaining = heartbeat.expiresAt.timeIntervalSinceNow
        var commands: [[String]]
        if heartbeat.isOnline && remaining > 0 {
            let json = String(decoding: try JSONEncoder().encode(heartbeat), as: UTF8.self)
            let milliseconds = max(1, Int64((remaining * 1000).rounded(.up)))
            let indexMilliseconds = max(milliseconds, ttlMilliseconds)
            commands = [
                ["SET", key, json, "PX", String(milliseconds)],
                ["ZADD", layout.workersKey, RedisResultLayout.score(heartbeat.expiresAt), heartbeat.workerID],
                ["PEXPIRE", layout.workersKey, String(indexMilliseconds)],
            ]
        } else {
            commands = [["DEL", key], ["ZREM", layout.workersKey, heartbeat.workerID]]
        }
        commands.append(["ZREMRANGEBYSCORE", layout.workersKey, "-inf", "(" + RedisResultLayout.score(Date())])
        let batch = commands
        try await perform(doing: "record the heartbeat of worker \(heartbeat.workerID) in") { session in
            for reply in try session.pipeline(batch, writes: true) { _ = try self.checked(reply, key: key) }
        }
    }

    /// The record of a task: ours, or the one a QTasks producer wrote
    /// (status `new`) before a worker took the task.
    ///
    /// - Throws: ``ResultStoreError`` `.corrupt` when its `qtasks_record` does
    ///   not parse or the key is not a hash, `.unavailable`, `.closed`.
    public func record(for uuid: String) async throws -> TaskRecord? {
        guard RedisResultLayout.isStorable(uuid: uuid) else {
            try await perform(doing: "read task \(uuid) from") { _ in }
            return nil
        }
        let key = layout.recordKey(uuid)
        let fields = RedisResultLayout.readFields + [RedisResultLayout.Field.returning, RedisResultLayout.Field.traceback]
        return try await perform(doing: "read task \(uuid) from") { session in
            let reply = try self.checked(try session.pipeline([["HMGET", key] + fields])[0], key: key)
            let values = try self.strings(reply, count: fields.count, to: "HMGET", key: key)
            guard var record = try self.decodeRecord(uuid: uuid, values: values, key: key) else { return nil }
            if values[0] == nil {
                // A hash that QTasks wrote: a QTasks worker may have ended it.
                if record.status == .success, let text = values[fields.count - 2] {
                    record.result = try? JSONParser.parse(text.utf8)
                } else if record.status == .error, let traceback = values[fields.count - 1] {
                    record.failure = TaskEvent.Failure(type: "", message: traceback, traceback: traceback)
                }
            }
            return self.isLive(record) ? record : nil
        }
    }

    /// Records matching a query, newest first: walks
    /// `<prefix>:qtasks_index:updated` from the newest (within the query's
    /// time range) in chunks, reading each chunk's records in one pipelined
    /// round trip and filtering them with ``TaskRecordQuery/matches(_:)``.
    ///
    /// - Throws: ``ResultStoreError`` `.corrupt`, `.unavailable`, `.closed`.
    public func records(matching query: TaskRecordQuery) async throws -> [TaskRecord] {
        // Saturating: an offset near Int.max (`qtasks tasks --offset`) must
        // not trap; the walk ends with the index anyway.
        let (sum, overflow) = max(0, query.offset).addingReportingOverflow(max(0, query.limit))
        let wanted = overflow ? Int.max : sum
        // Scores are the records' update times in ms; a margin of a
        // millisecond on each side, `matches` decides exactly.
        let maximum = query.until.map { String($0.timeIntervalSince1970 * 1000 + 1) } ?? "+inf"
        let minimum = query.since.map { String($0.timeIntervalSince1970 * 1000 - 1) } ?? "-inf"
        return try await perform(doing: "list task records in") { session in
            guard query.limit > 0 else { return [] }
            var found: [TaskRecord] = []
            var seen: Set<String> = []
            var start = 0
            var chunk = min(max(wanted, 100), 1000)
            while found.count < wanted {
                let reply = try self.checked(
                    try session.pipeline([
                        ["ZREVRANGEBYSCORE", self.layout.updatedKey, maximum, minimum, "LIMIT", String(start), String(chunk)]
                    ])[0], key: self.layout.updatedKey)
                guard case .array(let members) = reply else {
                    throw self.unexpected(reply, to: "ZREVRANGEBYSCORE", key: self.layout.updatedKey)
                }
                let uuids = members.compactMap { member -> String? in
                    guard case .string(let bytes) = member else { return nil }
                    return String(decoding: bytes, as: UTF8.self)
                }
                let replies = try session.pipeline(uuids.map { ["HGET", self.layout.recordKey($0), RedisResultLayout.Field.record] })
                for (uuid, reply) in zip(uuids, replies) where !seen.contains(uuid) {
                    let key = self.layout.recordKey(uuid)
                    guard case .string(let bytes) = try self.checked(reply, key: key) else { continue }  // gone
                    let record = try self.decode(bytes, key: key)
                    seen.insert(uuid)
                    if self.isLive(record) && query.matches(record) { found.append(record) }
                }
                if members.count < chunk { break }
                start += members.count
                chunk = min(chunk * 2, 5000)
            }
            return Array(found.dropFirst(max(0, query.offset)).prefix(max(0, query.limit)))
        }
    }

    public func liveWorkers() async throws -> [WorkerHeartbeat] {
        let now = Date()
        let workersKey = layout.workersKey
        return try await perform(doing: "list live workers in") { session in
            let replies = try session.pipeline([
                ["ZREMRANGEBYSCORE", workersKey, "-inf", "(" + RedisResultLayout.score(now)],
                ["ZRANGEBYSCORE", workersKey, "(" + RedisResultLayout.score(now), "+inf"],
            ])
            _ = try self.checked(replies[0], key: workersKey)
            guard case .array(let members) = try self.checked(replies[1], key: workersKey) else {
                throw self.unexpected(replies[1], to: "ZRANGEBYSCORE", key: workersKey)
            }
            let ids = members.compactMap { member -> String? in
                guard case .string(let bytes) = member else { return nil }
                return String(decoding: bytes, as: UTF8.self)
            }
            guard !ids.isEmpty else { return [] }
            let reply = try self.checked(try session.pipeline([["MGET"] + ids.map(self.layout.workerKey)])[0], key: workersKey)
            let values = try self.strings(reply, count: ids.count, to: "MGET", key: workersKey)
            let decoder = JSONDecoder()
            var workers: [WorkerHeartbeat] = []
            for (id, value) in zip(ids, values) {
                guard let value else { continue }  // expired between the two reads
                do {
                    let heartbeat = try decoder.decode(WorkerHeartbeat.self, from: Data(value.utf8))
                    if heartbeat.expiresAt > now { workers.append(heartbeat) }
                } catch {
                    throw ResultStoreError(
                        .corrupt,
                        "the heartbeat of worker \(id) at \(self.layout.workerKey(id)) in \(self.endpoint.redactedURL) does not parse: \(error)"
                    )
                }
            }
            return workers.sorted { $0.workerID < $1.workerID }
        }
    }

    public func close() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            queue.async {
                self.isClosed = true
                self.connection = nil
                self.writtenRecords.removeAll()
                continuation.resume()
            }
        }
    }

    // MARK: - Internals

    /// The time-to-live in milliseconds, at least 1.
    var ttlMilliseconds: Int64 {
        let seconds = min(Seconds.double(configuration.timeToLive), 1e12)
        return max(1, Int64((seconds * 1000).rounded(.up)))
    }

    /// Whether a record is within its time-to-live (its latest event is
    /// younger), as the other backends decide.
    func isLive(_ record: TaskRecord, now: Date = Date()) -> Bool {
        record.updatedAt.addingTimeInterval(Seconds.double(configuration.timeToLive)) > now
    }

    func decodeRecord(uuid: String, values: [String?], key: String) throws -> TaskRecord? {
        do {
            return try RedisResultLayout.record(uuid: uuid, values: values)
        } catch {
            throw ResultStoreError(
                .corrupt, "the record at \(key) in \(endpoint.redactedURL) does not parse: \(error)")
        }
    }

    func decode(_ bytes: [UInt8], key: String) throws -> TaskRecord {
        do {
            return try TaskRecordJSON.decode(bytes)
        } catch {
            throw ResultStoreError(
                .corrupt, "the record at \(key) in \(endpoint.redactedURL) does not parse: \(error)")
        }
    }

    /// The values of an `HMGET` or `MGET` reply, nil for missing ones.
    func strings(_ reply: RedisReply, count: Int, to command: String, key: String) throws -> [String?] {
        guard case .array(let elements) = reply, elements.count == count else {
            throw unexpected(reply, to: command, key: key)
        }
        return try elements.map { element in
            switch element {
            case .string(let bytes): return String(decoding: bytes, as: UTF8.self)
            case .nil: return nil
            default: throw unexpected(reply, to: command, key: key)
            }
        }
    }

    /// `reply`, unless it is an error reply: then the matching
    /// ``ResultStoreError``.
    func checked(_ reply: RedisReply, key: String) throws -> RedisReply {
        guard case .error(let text) = reply else { return reply }
        if text.hasPrefix("WRONGTYPE") {
            throw ResultStoreError(
                .corrupt, "Redis key \(key) at \(endpoint.redactedURL) is not what the result store keeps there: \(text)")
        }
        throw ResultStoreError(
            .unavailable, "Redis at \(endpoint.redactedURL) refused a command on key \(key): \(text)")
    }

    func unexpected(_ reply: RedisReply, to command: String, key: String) -> ResultStoreError {
        ResultStoreError(.corrupt, "unexpected reply to \(command) \(key) from \(endpoint.redactedURL): \(reply)")
    }

    /// Runs `body` on the store's queue, with SIGPIPE blocked, through a
    /// ``Session`` on the store's connection.
    ///
    /// - Parameter doing: what the operation does, for messages ("list task
    ///   records in").
    func perform<T: Sendable>(doing: String, _ body: @escaping @Sendable (inout Session) throws -> T) async throws -> T {
        // The whole call, its wait for the queue included, has the
        // configured timeout (RedisDeadline).
        let deadline = RedisDeadline(timeout: configuration.timeout)
        return try await withCheckedThrowingContinuation { continuation in
            queue.async {
                continuation.resume(
                    with: Result {
                        try withSIGPIPEBlocked {
                            dispatchPrecondition(condition: .onQueue(self.queue))
                            guard !self.isClosed else {
                                throw ResultStoreError(
                                    .closed, "cannot \(doing) \(self.endpoint.redactedURL): the result store is closed")
                            }
                            guard !deadline.hasPassed else {
                                throw ResultStoreError(
                                    .unavailable,
                                    "cannot \(doing) Redis at \(self.endpoint.redactedURL): \(deadline.expiredText) waiting for the connection (an earlier call is still waiting for the server)"
                                )
                            }
                            var session = Session(
                                store: self, doing: doing, mayRetry: self.connection != nil, deadline: deadline)
                            return try body(&session)
                        }
                    })
            }
        }
    }

    /// One operation's round trips on the store's connection (on its queue).
    struct Session {
        let store: RedisResultStore
        let doing: String
        /// The connection was made before this operation: it may have died
        /// while idle (a Redis restart), so the first round trip that fails
        /// is tried once more on a new connection.
        var mayRetry: Bool
        /// The end of the operation's time budget: every round trip and
        /// reconnect comes out of it.
        let deadline: RedisDeadline

        /// Sends `commands` in one write and reads their replies (error
        /// replies are values). Only an operation's first round trip is
        /// retried (``mayRetry``), and that is always a read or an
        /// idempotent write (the compare-and-set of a batch comes after its
        /// read), so a retry is safe.
        ///
        /// - Parameter writes: whether the commands change data (the error
        ///   then says the write may or may not have been applied).
        /// - Throws: ``ResultStoreError`` `.unavailable` when the connection
        ///   breaks (it is dropped; the next operation reconnects).
        mutating func pipeline(_ commands: [[String]], writes: Bool = false) throws -> [RedisReply] {
            var buffer = RedisCommandBuffer()
            for command in commands { buffer.command(command) }
            return try pipeline(buffer, writes: writes)
        }

        /// Sends the encoded `commands` in one write and reads their
        /// replies, as ``pipeline(_:writes:)-([[String]],_)``.
        mutating func pipeline(_ commands: RedisCommandBuffer, writes: Bool = false) throws -> [RedisReply] {
            while true {
                do {
                    let live: RedisConnection
                    if let connection = store.connection {
                        live = connection
                        try live.setTimeout(deadline.remaining)
                    } else {
                        live = try store.connect(timeout: deadline.remaining)
                    }
                    store.connection = live
                    let replies = try live.pipeline(commands, hasEffects: writes)
                    mayRetry = false
                    return replies
                } catch let failure as RedisConnection.Failure {
                    store.connection = nil
                    if mayRetry && !deadline.hasPassed {
                        mayRetry = false
                        continue
                    }
                    let outcome = failure.mayHaveApplied ? " (the write may or may not have been applied)" : ""
                    let timedOut = deadline.hasPassed ? "\(deadline.expiredText): " : ""
                    throw ResultStoreError(
                        .unavailable,
                        "cannot \(doing) Redis at \(store.endpoint.redactedURL): \(timedOut)\(failure.message)\(outcome)")
                }
            }
        }
    }

    /// A new connection, logged in (`AUTH`) and on its database (`SELECT`).
    fileprivate func connect(timeout: Duration) throws -> RedisConnection {
        let connection = try RedisConnection.connect(
            host: endpoint.host, port: endpoint.port, timeout: timeout)
        if let password = endpoint.password {
            let auth = endpoint.username.map { ["AUTH", $0, password] } ?? ["AUTH", password]
            if case .error(let text) = try connection.command(auth) {
                throw ResultStoreError(.unavailable, "Redis at \(endpoint.redactedURL) refused authentication: \(text)")
            }
        }
        if endpoint.database != 0,
            case .error(let text) = try connection.command(["SELECT", String(endpoint.database)])
        {
            throw ResultStoreError(
                .unavailable, "Redis at \(endpoint.redactedURL) cannot select database \(endpoint.database): \(text)")
        }
        return connection
    }
}
