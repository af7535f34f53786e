import Foundation
import Logging
import Metrics
import QTasks
import QTasksState
import ServiceLifecycle

/// One periodic task: what to send, where, and when.
public struct ScheduleEntry: Sendable, Hashable {
    /// Identifies the entry in the shared State (the key of its claims): every
    /// scheduler process must give the same entry the same name. Defaults to
    /// `"<task>@<queue>@<schedule>"`.
    public var name: String
    public var taskName: String
    public var args: [JSONValue]
    public var kwargs: [String: JSONValue]
    public var queue: String
    public var schedule: Schedule

    public init(
        name: String? = nil,
        taskName: String,
        args: [JSONValue] = [],
        kwargs: [String: JSONValue] = [:],
        queue: String = "default",
        schedule: Schedule
    ) {
        self.name = name ?? "\(taskName)@\(queue)@\(schedule)"
        self.taskName = taskName
        self.args = args
        self.kwargs = kwargs
        self.queue = queue
        self.schedule = schedule
    }

    /// The uuid of the task sent for `tick`: derived from the entry's name and
    /// the tick only, so every process would send the same uuid for the same
    /// tick (UUID-shaped, version nibble 8 "custom").
    public func taskUUID(forTick tick: Int64) -> String {
        let text = Array("\(name)#\(tick)".utf8)
        let high = fnv1a64(text, seed: 0xcbf2_9ce4_8422_2325)
        let low = fnv1a64(text, seed: 0x8422_2325_cbf2_9ce4)
        var hex = String(high, radix: 16).leftPadded(16) + String(low, radix: 16).leftPadded(16)
        // Version 8 (custom), RFC 4122 variant.
        var chars = Array(hex)
        chars[12] = "8"
        chars[16] = ["8", "9", "a", "b"][Int(low >> 62)]
        hex = String(chars)
        let c = Array(hex)
        return String(c[0..<8]) + "-" + String(c[8..<12]) + "-" + String(c[12..<16]) + "-"
            + String(c[16..<20]) + "-" + String(c[20..<32])
    }
}

private func fnv1a64(_ bytes: [UInt8], seed: UInt64) -> UInt64 {
    var hash = seed
    for byte in bytes {
        hash ^= UInt64(byte)
        hash = hash &* 0x0000_0100_0000_01b3
    }
    // splitmix64's finalizer: nearby inputs give unrelated outputs.
    hash = (hash ^ (hash >> 30)) &* 0xbf58_476d_1ce4_e5b9
    hash = (hash ^ (hash >> 27)) &* 0x94d0_49bb_1331_11eb
    return hash ^ (hash >> 31)
}

extension String {
    fileprivate func leftPadded(_ width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}

/// Submits periodic tasks, each tick exactly once across every scheduler
/// process that shares the same State backend (docs/scheduling.md).
///
/// For each due tick, the scheduler claims it in the State backend with one
/// atomic ``StateStore/modify(_:ttl:_:)`` of the state
/// `qtasks-schedule/<entry name>`: if its `last_tick` is below the tick, it
/// sets it and this process sends the task; otherwise another process already
/// did. SQLite (one file on one host) and Redis (any number of hosts) give the
/// atomicity across processes; `memory://` only within one process.
///
/// The same document records, for the dashboard (``statuses(in:limit:)``,
/// ``ScheduleStatus``): the entry's `task_name`, `queue` and `schedule`, its
/// `next_tick` (written by the claim and when a scheduler starts), and
/// `last_submitted_by` / `last_submitted_at` (written after the publish of
/// the claimed tick was confirmed). Field names: ``DocumentField``.
///
/// Ticks that passed while no scheduler ran are not sent later. A process
/// that dies between a claim and the publish loses that one tick (at most
/// once, never twice).
///
/// Metrics (swift-metrics; Prometheus through `--metrics-port` of
/// `qtasks-scheduler`): `qtasks_scheduler_ticks_total` with labels `entry`
/// and `outcome`: `submitted` (this process sent the task),
/// `claimed_elsewhere` (another scheduler had it) or `failed` (claim or
/// publish failed; that tick is lost). Summed over a fleet of schedulers,
/// `submitted` grows by exactly one per tick.
///
/// A swift-service-lifecycle `Service`: ``run()`` returns on graceful
/// shutdown or cancellation, or once every entry is past `until`.
public final class Scheduler: Service, Sendable {
    /// The State namespace of the claims.
    public static let stateNamespace = "qtasks-schedule"

    public let entries: [ScheduleEntry]
    /// Who this scheduler is in `last_submitted_by`: `host:pid` unless given.
    public let schedulerID: String
    private let broker: any Broker
    private let store: any StateStore
    private let from: Int64?
    private let until: Int64?
    private let logger: Logger
    private let onSubmit: @Sendable (ScheduleEntry, Int64, String) -> Void

    /// - Parameters:
    ///   - broker: where tasks are published (its queues declared on first use).
    ///   - store: the shared State backend holding the claims.
    ///   - from: when given, ticks before this time (Unix seconds) are skipped.
    ///   - until: when given, only ticks before this time (Unix seconds) are
    ///     sent, and ``run()`` returns after the last of them.
    ///   - schedulerID: this process in the `last_submitted_by` field; nil
    ///     means ``defaultSchedulerID`` (`host:pid`).
    ///   - onSubmit: called after each task this process published, with the
    ///     entry, the tick and the task uuid.
    public init(
        entries: [ScheduleEntry],
        broker: any Broker,
        store: any StateStore,
        from: Int64? = nil,
        until: Int64? = nil,
        logger: Logger = Logger(label: "qtasks.scheduler"),
        schedulerID: String? = nil,
        onSubmit: @escaping @Sendable (ScheduleEntry, Int64, String) -> Void = { _, _, _ in }
    ) {
        self.entries = entries
        self.broker = broker
        self.store = store
        self.from = from
        self.until = until
        self.logger = logger
        self.onSubmit = onSubmit
        self.schedulerID = schedulerID ?? Self.defaultSchedulerID
    }

    /// `host:pid` of this process (the host name as `ProcessInfo` gives it).
    public static var defaultSchedulerID: String {
        "\(ProcessInfo.processInfo.hostName):\(ProcessInfo.processInfo.processIdentifier)"
    }

    /// Runs every entry until graceful shutdown, cancellation, or `until`;
    /// returns normally in all three cases.
    public func run() async throws {
        // Logged from inside the service: in a ServiceGroup, after its signal
        // handlers are in place.
        logger.info("scheduler started", metadata: ["schedules": "\(entries.count)"])
        do {
            try await cancelWhenGracefulShutdown {
                try await withThrowingTaskGroup(of: Void.self) { group in
                    for entry in self.entries {
                        group.addTask { try await self.runEntry(entry) }
                    }
                    try await group.waitForAll()
                }
            }
        } catch is CancellationError {
            // Stopping is not a failure.
        }
    }

    /// Claims `tick` of `entry`: true when this caller won it (and must send).
    ///
    /// One atomic ``StateStore/modify(_:ttl:_:)`` of `qtasks-schedule/<entry
    /// name>`: won when the stored `last_tick` is absent or below `tick`.
    /// The winner sets `last_tick` to `tick`, `next_tick` to the schedule's
    /// next tick after it (removed when there is none) and `task_name`,
    /// `queue`, `schedule` to the entry's; a loser writes nothing. Other
    /// fields (those of older or newer schedulers) are kept.
    ///
    /// - Parameter tick: Unix seconds.
    /// - Throws: ``StateError`` from the store.
    public static func claim(_ entry: ScheduleEntry, tick: Int64, in store: any StateStore) async throws -> Bool {
        let next = entry.schedule.nextTick(after: tick)
        return try await store.modify(stateID(of: entry)) { document in
            if let last = document[DocumentField.lastTick]?.intValue, last >= tick { return false }
            document[DocumentField.lastTick] = .int(tick)
            document[DocumentField.nextTick] = next.map { .int($0) }
            describe(entry, in: &document)
            return true
        }
    }

    /// Records, when a scheduler starts, the entry and its first tick after
    /// `time` (Unix seconds) in its State document, so that the dashboard
    /// shows the entry before its first tick: `task_name`, `queue`,
    /// `schedule`, and `next_tick`, the schedule's first tick after both
    /// `time` and the stored `last_tick`. A `next_tick` already stored for
    /// the same `schedule` is only ever raised, so that a scheduler starting
    /// late (or with a slow clock) does not move back what a running one
    /// wrote. Claims are not affected (`last_tick` is left alone).
    ///
    /// - Throws: ``StateError`` from the store.
    public static func announce(_ entry: ScheduleEntry, after time: Int64, in store: any StateStore) async throws {
        let schedule = entry.schedule
        try await store.modify(stateID(of: entry)) { document in
            let last = document[DocumentField.lastTick]?.intValue
            var next = schedule.nextTick(after: max(time, last ?? time))
            if document[DocumentField.schedule]?.stringValue == schedule.summary,
                let stored = document[DocumentField.nextTick]?.intValue, stored > next ?? .min
            {
                next = stored
            }
            document[DocumentField.nextTick] = next.map { .int($0) }
            describe(entry, in: &document)
        }
    }

    /// Records that this scheduler published and the broker confirmed the
    /// task of `tick`: `last_submitted_by` and `last_submitted_at`, unless
    /// `last_tick` moved past `tick` in between (a newer tick's sender then
    /// writes its own).
    static func recordSubmission(
        _ entry: ScheduleEntry, tick: Int64, by schedulerID: String, at time: Double, in store: any StateStore
    ) async throws {
        try await store.modify(stateID(of: entry)) { document in
            guard document[DocumentField.lastTick]?.intValue == tick else { return }
            document[DocumentField.lastSubmittedBy] = .string(schedulerID)
            document[DocumentField.lastSubmittedAt] = .double(time)
        }
    }

    private static func stateID(of entry: ScheduleEntry) -> StateID {
        StateID(namespace: stateNamespace, key: entry.name)
    }

    private static func describe(_ entry: ScheduleEntry, in document: inout [String: JSONValue]) {
        document[DocumentField.taskName] = .string(entry.taskName)
        document[DocumentField.queue] = .string(entry.queue)
        document[DocumentField.schedule] = .string(entry.schedule.summary)
    }

    private static func now() -> Double { Date().timeIntervalSince1970 }

    /// The tick counter of `entry` for `outcome`.
    private static func ticks(_ entry: ScheduleEntry, _ outcome: String) -> Counter {
        Counter(label: "qtasks_scheduler_ticks_total", dimensions: [("entry", entry.name), ("outcome", outcome)])
    }

    private func runEntry(_ entry: ScheduleEntry) async throws {
        let submitted = Self.ticks(entry, "submitted")
        let claimedElsewhere = Self.ticks(entry, "claimed_elsewhere")
        let failed = Self.ticks(entry, "failed")
        var after = Int64(Self.now().rounded(.down))
        if let from { after = max(after, from - 1) }
        do {
            try await Self.announce(entry, after: after, in: store)
        } catch {
            // Only the dashboard's view is late; claims report their own errors.
            logger.warning("cannot record the schedule in State", metadata: ["entry": "\(entry.name)", "error": "\(error)"])
        }
        var declared = false
        while !Task.isCancelled {
            guard let tick = entry.schedule.nextTick(after: after) else {
                logger.warning("schedule never fires again", metadata: ["entry": "\(entry.name)"])
                return
            }
            if let until, tick >= until { return }
            let wait = Double(tick) - Self.now()
            if wait > 0 {
                try await Task.sleep(for: .milliseconds(Int64((wait * 1000).rounded(.up))))
            }
            // After a long stall, skip to the latest tick that passed.
            let now = Int64(Self.now().rounded(.down))
            var due = tick
            while let next = entry.schedule.nextTick(after: due), next <= now, until.map({ next < $0 }) ?? true {
                due = next
            }
            after = due
            do {
                guard try await Self.claim(entry, tick: due, in: store) else {
                    logger.debug("tick sent by another scheduler", metadata: ["entry": "\(entry.name)", "tick": "\(due)"])
                    claimedElsewhere.increment()
                    continue
                }
                if !declared {
                    try await broker.declareTaskQueue(entry.queue)
                    declared = true
                }
                let uuid = entry.taskUUID(forTick: due)
                let task = TaskMessage(
                    taskName: entry.taskName, args: entry.args, kwargs: entry.kwargs, uuid: uuid,
                    createdAt: Self.now())
                let message = Message(
                    body: task.jsonBytes(),
                    properties: MessageProperties(
                        contentType: "application/json", persistent: true, correlationID: uuid,
                        messageID: uuid, timestamp: UInt64(max(0, task.createdAt))))
                try await broker.publish(message, to: entry.queue, mandatory: true)
                logger.info(
                    "submitted", metadata: ["entry": "\(entry.name)", "task": "\(entry.taskName)",
                                            "queue": "\(entry.queue)", "tick": "\(due)", "uuid": "\(uuid)"])
                submitted.increment()
                do {
                    try await Self.recordSubmission(entry, tick: due, by: schedulerID, at: Self.now(), in: store)
                } catch {
                    // The task was sent: only the dashboard's view is stale.
                    logger.warning(
                        "cannot record the submission in State",
                        metadata: ["entry": "\(entry.name)", "tick": "\(due)", "error": "\(error)"])
                }
                onSubmit(entry, due, uuid)
            } catch is CancellationError {
                return
            } catch {
                // One tick lost (or, if the claim failed, not claimed): log
                // and go on with the next one.
                logger.error("tick failed", metadata: ["entry": "\(entry.name)", "tick": "\(due)", "error": "\(error)"])
                failed.increment()
            }
        }
    }
}
