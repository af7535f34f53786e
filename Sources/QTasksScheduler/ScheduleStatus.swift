import QTasks
import QTasksState

/// What the shared State says about one schedule entry: the document of
/// `qtasks-schedule/<entry name>` that the schedulers write
/// (docs/scheduling.md), as the dashboard shows it (`GET /api/schedules`).
///
/// Every field but ``name`` is optional: documents written by schedulers
/// before these fields existed hold only `last_tick`, and a field of the
/// wrong JSON type reads as nil. Encodes with the document's snake_case names
/// and writes absent fields as `null`:
///
/// ```json
/// {"name": "report@default@cron '0 3 * * *'", "task_name": "report", "queue": "default",
///  "schedule": "cron 0 3 * * *", "last_tick": 1765000000, "next_tick": 1765086400,
///  "last_submitted_by": "host-1:4242", "last_submitted_at": 1765000000.2}
/// ```
public struct ScheduleStatus: Sendable, Codable, Hashable {
    /// The entry's name (``ScheduleEntry/name``), the key of its state.
    public var name: String
    /// The task sent (``ScheduleEntry/taskName``).
    public var taskName: String?
    /// The queue it is sent to.
    public var queue: String?
    /// ``Schedule/summary``: `every 60s` or `cron 0 3 * * *`.
    public var schedule: String?
    /// The last tick claimed (Unix seconds): its task was sent, or its publish
    /// failed (then ``lastSubmittedAt`` is older than this tick).
    public var lastTick: Int64?
    /// The schedule's next tick after ``lastTick`` (Unix seconds), or, before
    /// any tick was claimed, the first tick after the newest scheduler's
    /// start. A time the schedule fires, not a promise that a scheduler runs
    /// then. Nil when the schedule never fires again.
    public var nextTick: Int64?
    /// ``Scheduler/schedulerID`` of the process that sent the last task
    /// (`host:pid` by default).
    public var lastSubmittedBy: String?
    /// When that task was published and confirmed (Unix seconds, with a
    /// fraction).
    public var lastSubmittedAt: Double?

    public init(
        name: String, taskName: String? = nil, queue: String? = nil, schedule: String? = nil,
        lastTick: Int64? = nil, nextTick: Int64? = nil, lastSubmittedBy: String? = nil,
        lastSubmittedAt: Double? = nil
    ) {
        self.name = name
        self.taskName = taskName
        self.queue = queue
        self.schedule = schedule
        self.lastTick = lastTick
        self.nextTick = nextTick
        self.lastSubmittedBy = lastSubmittedBy
        self.lastSubmittedAt = lastSubmittedAt
    }

    /// The status an entry's State document describes.
    public init(name: String, document: [String: JSONValue]) {
        typealias Field = Scheduler.DocumentField
        self.init(
            name: name,
            taskName: document[Field.taskName]?.stringValue,
            queue: document[Field.queue]?.stringValue,
            schedule: document[Field.schedule]?.stringValue,
            lastTick: document[Field.lastTick]?.intValue,
            nextTick: document[Field.nextTick]?.intValue,
            lastSubmittedBy: document[Field.lastSubmittedBy]?.stringValue,
            lastSubmittedAt: document[Field.lastSubmittedAt]?.doubleValue)
    }

    private enum CodingKeys: String, CodingKey {
        case name
        case taskName = "task_name"
        case queue
        case schedule
        case lastTick = "last_tick"
        case nextTick = "next_tick"
        case lastSubmittedBy = "last_submitted_by"
        case lastSubmittedAt = "last_submitted_at"
    }

    /// Writes every field, absent ones as `null` (the dashboard's contract).
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(name, forKey: .name)
        try container.encode(taskName, forKey: .taskName)
        try container.encode(queue, forKey: .queue)
        try container.encode(schedule, forKey: .schedule)
        try container.encode(lastTick, forKey: .lastTick)
        try container.encode(nextTick, forKey: .nextTick)
        try container.encode(lastSubmittedBy, forKey: .lastSubmittedBy)
        try container.encode(lastSubmittedAt, forKey: .lastSubmittedAt)
    }
}

extension Scheduler {
    /// The field names of an entry's State document (`qtasks-schedule/<entry name>`).
    public enum DocumentField {
        /// Int, Unix seconds: the last tick claimed. Written by the claim.
        public static let lastTick = "last_tick"
        /// Int, Unix seconds: the schedule's next tick (absent when none).
        /// Written by the claim, and when a scheduler starts.
        public static let nextTick = "next_tick"
        /// String: the entry's task name. Written with `next_tick`.
        public static let taskName = "task_name"
        /// String: the entry's queue. Written with `next_tick`.
        public static let queue = "queue"
        /// String: ``Schedule/summary``. Written with `next_tick`.
        public static let schedule = "schedule"
        /// String: ``Scheduler/schedulerID`` of the process that sent the
        /// task of `last_tick`. Written after the publish was confirmed.
        public static let lastSubmittedBy = "last_submitted_by"
        /// Double, Unix seconds: when that publish was confirmed.
        public static let lastSubmittedAt = "last_submitted_at"
    }

    /// The status of every schedule entry recorded in `store`, by any
    /// scheduler that shares it (not only this process's entries), sorted by
    /// entry name (UTF-8 bytes).
    ///
    /// Reads the keys of namespace ``stateNamespace`` with
    /// ``StateStore/keys(in:limit:)``, then each document with
    /// ``StateStore/getAll(in:)``: one read per entry, not a snapshot.
    /// Entries removed from every scheduler's configuration stay listed with
    /// their last values until their state is cleared
    /// (`qtasks state clear qtasks-schedule --key NAME`).
    ///
    /// - Parameters:
    ///   - store: the State backend the schedulers use.
    ///   - limit: the most entries to return (≥ 0); ask for one more than
    ///     you show to know whether the list was cut.
    /// - Returns: at most `limit` statuses.
    /// - Throws: ``StateError`` from the store (`unsupported` when it cannot
    ///   list keys, `invalidArgument` for a negative `limit`).
    public static func statuses(in store: any StateStore, limit: Int = 1_000) async throws -> [ScheduleStatus] {
        var statuses: [ScheduleStatus] = []
        try StateListing.check(limit: limit)
        // One more: a keyless state of the namespace (not an entry) is skipped.
        let keys = try await store.keys(in: stateNamespace, limit: limit == .max ? limit : limit + 1)
        for name in keys.compactMap({ $0 }).prefix(limit) {
            let document = try await store.getAll(in: StateID(namespace: stateNamespace, key: name))
            // Gone between the listing and the read: not listed.
            if document.isEmpty { continue }
            statuses.append(ScheduleStatus(name: name, document: document))
        }
        return statuses
    }
}
