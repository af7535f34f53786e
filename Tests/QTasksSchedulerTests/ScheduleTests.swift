import Foundation
import QTasks
import QTasksState
import QTasksStateStores
import Synchronization
import Testing

@testable import QTasksScheduler

/// Unix seconds of a UTC date.
private func utc(_ year: Int, _ month: Int, _ day: Int, _ hour: Int = 0, _ minute: Int = 0, _ second: Int = 0) -> Int64 {
    var calendar = Calendar(identifier: .gregorian)
    calendar.timeZone = TimeZone(identifier: "UTC")!
    let date = calendar.date(from: DateComponents(year: year, month: month, day: day, hour: hour, minute: minute, second: second))!
    return Int64(date.timeIntervalSince1970)
}

@Suite struct CronExpressionTests {
    @Test func parsesFields() throws {
        let cron = try CronExpression(parsing: "*/15 9-17 1,15 */3 1-5")
        #expect(cron.minutes == [0, 15, 30, 45])
        #expect(cron.hours == Set(9...17))
        #expect(cron.daysOfMonth == [1, 15])
        #expect(cron.months == [1, 4, 7, 10])
        #expect(cron.daysOfWeek == [1, 2, 3, 4, 5])
        #expect(try CronExpression(parsing: "5/20 0 * * 7").minutes == [5, 25, 45])
        #expect(try CronExpression(parsing: "0 0 * * 7").daysOfWeek == [0], "7 is Sunday")
        #expect(try CronExpression(parsing: "10-20/5 * * * *").minutes == [10, 15, 20])
    }

    @Test(arguments: [
        "", "* * * *", "* * * * * *", "60 * * * *", "* 24 * * *", "* * 0 * *", "* * * 13 *", "* * * * 8",
        "*/0 * * * *", "5-1 * * * *", "a * * * *", "1,,2 * * * *", "-1 * * * *", "*/x * * * *", "1/2/3 * * * *",
    ])
    func rejects(_ text: String) {
        #expect(throws: CronExpression.ParseError.self) { try CronExpression(parsing: text) }
    }

    @Test func nextMatches() throws {
        let every5 = try CronExpression(parsing: "*/5 * * * *")
        #expect(every5.nextMatch(after: utc(2026, 11, 30, 2, 48, 10)) == utc(2026, 11, 30, 2, 50))
        #expect(every5.nextMatch(after: utc(2026, 11, 30, 2, 50)) == utc(2026, 11, 30, 2, 55), "strictly after")
        #expect(every5.nextMatch(after: utc(2026, 12, 31, 23, 59)) == utc(2027, 1, 1, 0, 0))

        let daily = try CronExpression(parsing: "30 4 * * *")
        #expect(daily.nextMatch(after: utc(2026, 11, 30, 5, 0)) == utc(2026, 12, 1, 4, 30))

        // 2026-11-30 is a Monday; next Sunday 00:00 is 2026-12-06.
        let sunday = try CronExpression(parsing: "0 0 * * 0")
        #expect(sunday.nextMatch(after: utc(2026, 11, 30, 12)) == utc(2026, 12, 6))

        // Leap day.
        let leap = try CronExpression(parsing: "0 12 29 2 *")
        #expect(leap.nextMatch(after: utc(2026, 3, 1)) == utc(2028, 2, 29, 12))

        // Day of month OR day of week when both are restricted: the 13th or a Friday.
        let either = try CronExpression(parsing: "0 0 13 * 5")
        #expect(either.nextMatch(after: utc(2026, 11, 30)) == utc(2026, 12, 4), "Friday 4 December")
        #expect(either.nextMatch(after: utc(2026, 12, 11, 1)) == utc(2026, 12, 13), "Sunday the 13th")

        #expect(try CronExpression(parsing: "0 0 31 2 *").nextMatch(after: utc(2026, 1, 1)) == nil)
    }

    @Test func civilDates() {
        for (days, date) in [(Int64(0), (Int64(1970), 1, 1)), (-1, (1969, 12, 31)), (20_423, (2025, 12, 1)), (11_016, (2000, 2, 29))] {
            let got = civilFromDays(days)
            #expect(got.0 == date.0 && got.1 == date.1 && got.2 == date.2, "\(days)")
        }
    }
}

@Suite struct TickTests {
    @Test func intervalsAlignOnTheEpoch() {
        #expect(Schedule.every(.seconds(1)).nextTick(after: 100) == 101)
        #expect(Schedule.every(.seconds(10)).nextTick(after: 100) == 110)
        #expect(Schedule.every(.seconds(10)).nextTick(after: 109) == 110)
        #expect(Schedule.every(.seconds(60)).nextTick(after: utc(2026, 11, 30, 2, 48, 10)) == utc(2026, 11, 30, 2, 49))
        #expect(Schedule.every(.seconds(7)).nextTick(after: -1) == 0)
        // Ticks are whole seconds: a fraction is dropped, under 1 s is 1 s.
        #expect(Schedule.every(.milliseconds(10_500)).nextTick(after: 100) == 110)
        #expect(Schedule.every(.milliseconds(200)).nextTick(after: 100) == 101)
        #expect(Schedule.every(.seconds(60)).description == "every 60s", "part of the entries' claim keys")
    }

    @Test func uuidsAreDeterministicAndDistinct() {
        let entry = ScheduleEntry(taskName: "add", queue: "q", schedule: .every(.seconds(1)))
        #expect(entry.name == "add@q@every 1s")
        #expect(entry.taskUUID(forTick: 5) == ScheduleEntry(taskName: "add", queue: "q", schedule: .every(.seconds(1))).taskUUID(forTick: 5))
        let uuids = Set((0..<10_000).map { entry.taskUUID(forTick: Int64($0)) })
        #expect(uuids.count == 10_000)
        let uuid = entry.taskUUID(forTick: 1)
        #expect(UUID(uuidString: uuid) != nil, "\(uuid)")
        #expect(uuid == uuid.lowercased())
    }

    @Test func aTickIsClaimedOnce() async throws {
        let store = MemoryStateStore()
        let entry = ScheduleEntry(taskName: "add", schedule: .every(.seconds(1)))
        let wins = try await withThrowingTaskGroup(of: Bool.self) { group in
            for _ in 0..<20 { group.addTask { try await Scheduler.claim(entry, tick: 42, in: store) } }
            return try await group.reduce(0) { $0 + ($1 ? 1 : 0) }
        }
        #expect(wins == 1)
        #expect(try await Scheduler.claim(entry, tick: 41, in: store) == false, "an older tick is never sent")
        #expect(try await Scheduler.claim(entry, tick: 43, in: store) == true)
        let other = ScheduleEntry(taskName: "mul", schedule: .every(.seconds(1)))
        #expect(try await Scheduler.claim(other, tick: 42, in: store) == true, "entries claim apart")
    }

    /// Two schedulers on one memory broker and store, ticks [from, until):
    /// no tick is sent twice, and each one sent is one message under its
    /// tick's uuid. By design a scheduler that wakes late skips the ticks
    /// that passed (docs/scheduling.md), so on a loaded machine a tick may
    /// be missing: the first tick is 2 s away, so that only a stall of
    /// seconds leaves none.
    @Test func twoSchedulersSendEachTickOnce() async throws {
        let broker = MemoryBroker()
        let store = MemoryStateStore()
        let entry = ScheduleEntry(taskName: "add", args: [1, 2], queue: "sched", schedule: .every(.seconds(1)))
        let from = Int64(Date().timeIntervalSince1970.rounded(.down)) + 2
        let sent = Mutex<[Int64]>([])
        let schedulers = (0..<2).map { _ in
            Scheduler(entries: [entry], broker: broker, store: store, from: from, until: from + 3) { _, tick, _ in
                sent.withLock { $0.append(tick) }
            }
        }
        try await withThrowingTaskGroup(of: Void.self) { group in
            for scheduler in schedulers { group.addTask { try await scheduler.run() } }
            try await group.waitForAll()
        }
        let ticks = sent.withLock { $0.sorted() }
        #expect(Set(ticks).count == ticks.count, "a tick sent twice: \(ticks)")
        #expect(ticks.allSatisfy { (from..<from + 3).contains($0) }, "\(ticks)")
        #expect(!ticks.isEmpty)
        let messages = broker.messages(in: "sched")
        #expect(messages.count == ticks.count)
        let tasks = try messages.map { try TaskMessage(jsonBytes: $0.body) }
        #expect(Set(tasks.map(\.uuid)) == Set(ticks.map { entry.taskUUID(forTick: $0) }))
        #expect(tasks.allSatisfy { $0.taskName == "add" && $0.args == [1, 2] })
    }
}

/// Claims through two SQLite stores on one file, as two processes would:
/// each tick won by exactly one.
@Suite struct SQLiteClaimTests {
    @Test func twoStoresOnOneFileClaimEachTickOnce() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("qtasks-sched-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let url = "sqlite://\(directory.path)/state.db"
        let first = try await StateStores.open(url: url)
        let second = try await StateStores.open(url: url)
        let entry = ScheduleEntry(taskName: "add", schedule: .every(.seconds(1)))
        let wins = try await withThrowingTaskGroup(of: Int.self) { group in
            for store in [first, second] {
                group.addTask {
                    var won = 0
                    for tick in Int64(1)...50 where try await Scheduler.claim(entry, tick: tick, in: store) { won += 1 }
                    return won
                }
            }
            return try await group.reduce(0, +)
        }
        #expect(wins == 50)
        await first.close()
        await second.close()
    }
}
