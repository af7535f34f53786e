import Foundation

/// A durable record of tasks, their results and their workers' heartbeats,
/// written by workers (as a ``TaskEventSink`` in
/// ``TaskEventRecording/sinks``) and read by producers, the `qtasks`
/// command and dashboards.
///
/// Backends: ``MemoryResultStore`` (this process; tests), and by URL
/// through `ResultStores.open(url:)` in QTasksResultStores:
/// `sqlite:///path/results.db` (one host) and `redis://host:6379/0` (a
/// fleet; Python QTasks' layout, so QTasks producers read results with
/// `AsyncResult`). docs/results.md has both layouts.
///
/// Every record expires ``ResultStoreConfiguration/timeToLive`` after its
/// last event, and a store keeps at most
/// ``ResultStoreConfiguration/maxRecords`` finished ones (the oldest
/// finished go first).
public protocol ResultStore: TaskEventSink {
    /// The record of a task, nil when the store has none (never sent, not
    /// recorded, or expired).
    ///
    /// - Throws: ``ResultStoreError`` (`unavailable` when the backend cannot
    ///   be reached).
    func record(for uuid: String) async throws -> TaskRecord?

    /// Records matching a query, the most recently updated first.
    ///
    /// - Throws: ``ResultStoreError``.
    func records(matching query: TaskRecordQuery) async throws -> [TaskRecord]

    /// The workers whose latest heartbeat has not expired, by worker id.
    ///
    /// - Throws: ``ResultStoreError``.
    func liveWorkers() async throws -> [WorkerHeartbeat]

    /// Closes the store's connections; later calls throw
    /// ``ResultStoreError`` `.closed`. Safe to call more than once.
    func close() async
}

/// Which records ``ResultStore/records(matching:)`` returns.
public struct TaskRecordQuery: Sendable, Hashable {
    /// Only these statuses; nil: any.
    public var statuses: Set<TaskStatus>?
    /// Only this task name; nil: any.
    public var taskName: String?
    /// Only records whose latest delivery came from this queue; nil: any.
    public var queue: String?
    /// Only records updated at or after this time.
    public var since: Date?
    /// Only records updated before this time.
    public var until: Date?
    /// At most this many. Default 50.
    public var limit: Int
    /// Skip this many first (paging). Default 0.
    public var offset: Int

    public init(
        statuses: Set<TaskStatus>? = nil, taskName: String? = nil, queue: String? = nil, since: Date? = nil,
        until: Date? = nil, limit: Int = 50, offset: Int = 0
    ) {
        self.statuses = statuses
        self.taskName = taskName
        self.queue = queue
        self.since = since
        self.until = until
        self.limit = limit
        self.offset = offset
    }

    /// Whether a record matches (what every backend filters by).
    public func matches(_ record: TaskRecord) -> Bool {
        if let statuses, !statuses.contains(record.status) { return false }
        if let taskName, record.taskName != taskName { return false }
        if let queue, record.queue != queue { return false }
        if let since, record.updatedAt < since { return false }
        if let until, record.updatedAt >= until { return false }
        return true
    }
}

/// Limits and timeouts of a result store.
public struct ResultStoreConfiguration: Sendable, Hashable {
    public static let defaultMaxEventsPerRecord = 32

    /// How long a record lives after its latest event. Default 24 hours.
    public var timeToLive: Duration
    /// The most finished records kept; past it the oldest finished go
    /// first. Default 100,000. Unfinished records are bounded by
    /// ``timeToLive`` only.
    public var maxRecords: Int
    /// The most events kept in a record, the newest. Default 32.
    public var maxEventsPerRecord: Int
    /// Connect, read and write timeout of a networked backend. Default 5 s.
    public var timeout: Duration
    /// The Redis backend's key prefix: records are `<prefix>:<uuid>` hashes,
    /// as Python QTasks names them (its app name). Default `QueueTasks`,
    /// QTasks' default.
    public var keyPrefix: String

    public init(
        timeToLive: Duration = .seconds(24 * 3600), maxRecords: Int = 100_000,
        maxEventsPerRecord: Int = ResultStoreConfiguration.defaultMaxEventsPerRecord,
        timeout: Duration = .seconds(5), keyPrefix: String = "QueueTasks"
    ) {
        self.timeToLive = timeToLive
        self.maxRecords = maxRecords
        self.maxEventsPerRecord = maxEventsPerRecord
        self.timeout = timeout
        self.keyPrefix = keyPrefix
    }
}

/// A result store failed.
public struct ResultStoreError: Error, Sendable, Hashable, CustomStringConvertible {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Base: String { case invalidURL, unavailable, corrupt, closed, timedOut }
        private let base: Base
        private init(_ base: Base) { self.base = base }
        /// The URL is not one a backend accepts (the message says why; the
        /// password is redacted).
        public static let invalidURL = Code(.invalidURL)
        /// The backend cannot be reached, or refused the operation.
        public static let unavailable = Code(.unavailable)
        /// A stored record or heartbeat does not parse.
        public static let corrupt = Code(.corrupt)
        /// The store was closed.
        public static let closed = Code(.closed)
        /// A wait for a task's end ran out of time.
        public static let timedOut = Code(.timedOut)
        public var description: String { base.rawValue }
    }

    public var code: Code
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { message }
}
