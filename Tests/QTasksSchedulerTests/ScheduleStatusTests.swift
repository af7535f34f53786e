import Foundation
import QTasks
import QTasksState
import QTasksStateStores
import Synchronization
import Testing

@testable import QTasksScheduler

/// What schedulers record in State for the dashboard, and how it is read back.
@Suite struct ScheduleStatusTests {
    private func document(_ entry: ScheduleEntry, in store: any StateStore) async throws -> [String: JSONValue] {
        try await store.getAll(in: StateID(namespace: Scheduler.stateNamespace, key: entry.name))
    }

    @Test func summariesAreForPeopleAndDescriptionsStayClaimKeys() throws {
        #expect(Schedule.every(.seconds(60)).summary == "every 60s")
        #expect(try Schedule.cron("0 3 * * *").summary == "cron 0 3 * * *")
        #expect(try Schedule.cron("0 3 * * *").description == "cron '0 3 * * *'", "part of default entry names")
        let entry = ScheduleEntry(taskName: "report", schedule: try .cron("0 3 * * *"))
        #expect(entry.name == "report@default@cron '0 3 * * *'")
    }

    @Test func aWonClaimRecordsTheEntryAndItsNextTick() async throws {
        let store = MemoryStateStore()
        let entry = ScheduleEntry(taskName: "add", queue: "math", schedule: .every(.seconds(60)))
        #expect(try await Scheduler.claim(entry, tick: 120, in: store))
        let expected: [String: JSONValue] = [
            "last_tick": 120, "next_tick": 180, "task_name": "add", "queue": "math", "schedule": "every 60s",
        ]
        #expect(try await document(entry, in: store) == expected)
        #expect(try await Scheduler.claim(entry, tick: 120, in: store) == false)
        #expect(try await document(entry, in: store) == expected, "a lost claim writes nothing")

        // A cron that never fires again: no next_tick.
        let never = ScheduleEntry(taskName: "never", schedule: try .cron("0 0 31 2 *"))
        #expect(try await Scheduler.claim(never, tick: 60, in: store))
        #expect(try await document(never, in: store)["next_tick"] == nil)
    }

    /// Documents written before these fields existed hold only `last_tick`:
    /// claims keep working on them, and statuses read them.
    @Test func oldDocumentsStillWork() async throws {
        let store = MemoryStateStore()
        let entry = ScheduleEntry(taskName: "add", schedule: .every(.seconds(60)))
        let id = StateID(namespace: Scheduler.stateNamespace, key: entry.name)
        try await store.set("last_tick", to: 120, in: id)
        #expect(try await Scheduler.statuses(in: store) == [ScheduleStatus(name: entry.name, lastTick: 120)])
        #expect(try await Scheduler.claim(entry, tick: 120, in: store) == false)
        #expect(try await Scheduler.claim(entry, tick: 60, in: store) == false)
        #expect(try await Scheduler.claim(entry, tick: 180, in: store))
        let status = try #require(try await Scheduler.statuses(in: store).first)
        #expect(status == ScheduleStatus(
            name: entry.name, taskName: "add", queue: "default", schedule: "every 60s", lastTick: 180, nextTick: 240))
    }

    @Test func announcingNeverMovesTheNextTickBack() async throws {
        let store = MemoryStateStore()
        let entry = ScheduleEntry(taskName: "add", schedule: .every(.seconds(10)))
        try await Scheduler.announce(entry, after: 100, in: store)
        #expect(try await document(entry, in: store) == [
            "next_tick": 110, "task_name": "add", "queue": "default", "schedule": "every 10s",
        ])
        // A later tick claimed elsewhere: the next tick follows it.
        #expect(try await Scheduler.claim(entry, tick: 150, in: store))
        try await Scheduler.announce(entry, after: 100, in: store)
        #expect(try await document(entry, in: store)["next_tick"] == 160)
        #expect(try await document(entry, in: store)["last_tick"] == 150, "claims untouched")
        // A scheduler with a clock behind does not move next_tick back...
        try await store.set("next_tick", to: 500, in: StateID(namespace: Scheduler.stateNamespace, key: entry.name))
        try await Scheduler.announce(entry, after: 100, in: store)
        #expect(try await document(entry, in: store)["next_tick"] == 500)
        // ...unless the stored schedule is another one (an entry renamed onto it).
        let renamed = ScheduleEntry(name: entry.name, taskName: "add", schedule: .every(.seconds(7)))
        try await Scheduler.announce(renamed, after: 150, in: store)
        #expect(try await document(entry, in: store)["next_tick"] == 154)
        #expect(try await document(entry, in: store)["schedule"] == "every 7s")
    }

    @Test func aSubmissionIsRecordedOnlyForTheLastTick() async throws {
        let store = MemoryStateStore()
        let entry = ScheduleEntry(taskName: "add", schedule: .every(.seconds(1)))
        #expect(try await Scheduler.claim(entry, tick: 10, in: store))
        try await Scheduler.recordSubmission(entry, tick: 10, by: "host-a:1", at: 10.25, in: store)
        var status = try #require(try await Scheduler.statuses(in: store).first)
        #expect(status.lastSubmittedBy == "host-a:1")
        #expect(status.lastSubmittedAt == 10.25)
        // Tick 11 claimed by b; a's late record of tick 10 must not overwrite b's.
        #expect(try await Scheduler.claim(entry, tick: 11, in: store))
        try await Scheduler.recordSubmission(entry, tick: 11, by: "host-b:2", at: 11.5, in: store)
        try await Scheduler.recordSubmission(entry, tick: 10, by: "host-a:1", at: 11.6, in: store)
        status = try #require(try await Scheduler.statuses(in: store).first)
        #expect(status.lastTick == 11)
        #expect(status.lastSubmittedBy == "host-b:2")
        #expect(status.lastSubmittedAt == 11.5)
    }

    @Test func statusesEncodeAsTheDashboardWantsThem() throws {
        let status = ScheduleStatus(name: "n", taskName: "t", lastTick: 5, lastSubmittedAt: 5.5)
        let json = try JSONSerialization.jsonObject(with: JSONEncoder().encode(status)) as? [String: Any]
        let object = try #require(json)
        #expect(Set(object.keys) == [
            "name", "task_name", "queue", "schedule", "last_tick", "next_tick", "last_submitted_by", "last_submitted_at",
        ])
        #expect(object["queue"] is NSNull, "absent fields are null")
        #expect(object["last_tick"] as? Int == 5)
        #expect(object["last_submitted_at"] as? Double == 5.5)
        #expect(try JSONDecoder().decode(ScheduleStatus.self, from: JSONEncoder().encode(status)) == status)
    }

    /// A scheduler shows up in State when it starts, before its first tick.
    @Test func aFreshSchedulerShowsItsNextTickBeforeTheFirstTick() async throws {
        let store = MemoryStateStore()
        let entry = ScheduleEntry(taskName: "add", queue: "sched", schedule: .every(.seconds(1)))
        let from = Int64(Date().timeIntervalSince1970) + 3_600
        let scheduler = Scheduler(entries: [entry], broker: MemoryBroker(), store: store, from: from, until: from + 1)
        let running = Task { try await scheduler.run() }
        defer { running.cancel() }
        let deadline = ContinuousClock.now + .seconds(30)
        var statuses: [ScheduleStatus] = []
        while statuses.isEmpty {
            try #require(ContinuousClock.now < deadline, "the scheduler never recorded its entry")
            try await Task.sleep(for: .milliseconds(10))
            statuses = try await Scheduler.statuses(in: store)
        }
        #expect(statuses == [ScheduleStatus(
            name: entry.name, taskName: "add", queue: "sched", schedule: "every 1s", nextTick: from)])
        running.cancel()
        try await running.value
    }

    /// Two schedulers with their own ids: the status names the one that sent
    /// the last tick, when it did, and the tick after it.
    @Test func twoSchedulersRecordWhoSentTheLastTick() async throws {
        let broker = MemoryBroker()
        let store = MemoryStateStore()
        let entry = ScheduleEntry(taskName: "add", queue: "sched", schedule: .every(.seconds(1)))
        let from = Int64(Date().timeIntervalSince1970.rounded(.down)) + 2
        let sent = Mutex<[(tick: Int64, by: String)]>([])
        let schedulers = ["scheduler-a", "scheduler-b"].map { id in
            Scheduler(entries: [entry], broker: broker, store: store, from: from, until: from + 2, schedulerID: id) {
                _, tick, _ in sent.withLock { $0.append((tick, id)) }
            }
        }
        #expect(schedulers[0].schedulerID == "scheduler-a")
        #expect(Scheduler(entries: [], broker: broker, store: store).schedulerID == Scheduler.defaultSchedulerID)
        #expect(Scheduler.defaultSchedulerID.hasSuffix(":\(ProcessInfo.processInfo.processIdentifier)"))
        try await withThrowingTaskGroup(of: Void.self) { group in
            for scheduler in schedulers { group.addTask { try await scheduler.run() } }
            try await group.waitForAll()
        }
        let last = try #require(sent.withLock { $0.max { $0.tick < $1.tick } })
        let status = try #require(try await Scheduler.statuses(in: store).first)
        #expect(status.lastTick == last.tick)
        #expect(status.nextTick == last.tick + 1)
        #expect(status.lastSubmittedBy == last.by)
        let at = try #require(status.lastSubmittedAt)
        #expect(Double(last.tick) <= at && at <= Date().timeIntervalSince1970, "\(at)")
        #expect(status.taskName == "add" && status.queue == "sched" && status.schedule == "every 1s")
    }

    /// The same through SQLite (one file, two stores as two processes),
    /// with a keyless state in the namespace that is not an entry, and `limit`.
    @Test func statusesOnSQLite() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("qtasks-status-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let url = "sqlite://\(directory.path)/state.db"
        let writer = try await StateStores.open(url: url)
        let reader = try await StateStores.open(url: url)
        let entries = ["c", "a", "b"].map { ScheduleEntry(name: "entry-\($0)", taskName: $0, schedule: .every(.seconds(60))) }
        for entry in entries { try await Scheduler.announce(entry, after: 0, in: writer) }
        #expect(try await Scheduler.claim(entries[0], tick: 600, in: writer))
        try await Scheduler.recordSubmission(entries[0], tick: 600, by: "h:1", at: 600.5, in: writer)
        try await writer.set("x", to: 1, in: StateID(namespace: Scheduler.stateNamespace))

        let statuses = try await Scheduler.statuses(in: reader)
        #expect(statuses.map(\.name) == ["entry-a", "entry-b", "entry-c"])
        #expect(statuses[0] == ScheduleStatus(
            name: "entry-a", taskName: "a", queue: "default", schedule: "every 60s", nextTick: 60))
        #expect(statuses[2] == ScheduleStatus(
            name: "entry-c", taskName: "c", queue: "default", schedule: "every 60s", lastTick: 600, nextTick: 660,
            lastSubmittedBy: "h:1", lastSubmittedAt: 600.5))
        #expect(try await Scheduler.statuses(in: reader, limit: 2).map(\.name) == ["entry-a", "entry-b"])
        #expect(try await Scheduler.statuses(in: reader, limit: 0) == [])
        await writer.close()
        await reader.close()
    }
}
