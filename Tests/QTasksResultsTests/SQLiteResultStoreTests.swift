import Foundation
import QTasks
import QTasksResultStores
@testable import QTasksResultsSQLite
import Testing

/// SQLite specifics: the file outlives the store, open failures name the
/// path, several stores (processes) share a file and its bound, the
/// `record` column is a task record's JSON, corrupt rows, expiry.
@Suite("SQLite result store")
struct SQLiteResultStoreTests {
    @Test func recordsSurviveClosingAndReopeningTheFile() async throws {
        let directory = try ScratchDirectory()
        defer { directory.remove() }
        let url = "sqlite://\(directory.path)/results.db"

        let before = try await ResultStores.open(url: url)
        var script = EventScript(taskName: "billing.add")
        try await before.record(script.success(["total": 12.5]))
        var running = EventScript()
        try await before.record([running.received(), running.next(.started)])
        try await before.recordHeartbeat(heartbeat("w1", expiresIn: 60))
        let written = try #require(try await before.record(for: script.uuid))
        await before.close()  // a worker restart

        let after = try await ResultStores.open(url: url)
        let read = try await after.record(for: script.uuid)
        #expect(read == written)
        #expect(try await after.record(for: running.uuid)?.status == .process)
        #expect(try await after.records(matching: TaskRecordQuery()).count == 2)
        #expect(try await after.liveWorkers().map(\.workerID) == ["w1"])
        await after.close()
    }

    @Test func aPathInAMissingDirectoryIsUnavailableNamingThePath() async throws {
        let path = NSTemporaryDirectory() + "qtasks-no-such-directory-\(UUID().uuidString)/results.db"
        let error = await #expect(throws: ResultStoreError.self) {
            _ = try await ResultStores.open(url: "sqlite://\(path)")
        }
        #expect(error?.code == .unavailable)
        #expect(error?.message.contains(path) == true)
        #expect(error?.message.contains("does not exist") == true)
    }

    @Test func aFileThatIsNotADatabaseIsUnavailableNamingThePath() async throws {
        let directory = try ScratchDirectory()
        defer { directory.remove() }
        let path = "\(directory.path)/notes.txt"
        try Data(String(repeating: "these are not the pages of a database\n", count: 200).utf8)
            .write(to: URL(fileURLWithPath: path))
        let error = await #expect(throws: ResultStoreError.self) {
            _ = try await SQLiteResultStore.open(path: path)
        }
        #expect(error?.code == .unavailable)
        #expect(error?.message.contains(path) == true)
        #expect(error?.message.contains("not a database") == true)
    }

    /// Two workers of one host: each writes, each reads the other's
    /// records; writing the events of the same tasks at the same time loses
    /// none of them.
    @Test func twoStoresOnOneFileShareTheirRecords() async throws {
        let directory = try ScratchDirectory()
        defer { directory.remove() }
        let path = "\(directory.path)/results.db"
        let first = try await SQLiteResultStore.open(path: path)
        let second = try await SQLiteResultStore.open(path: path)

        var mine = EventScript(taskName: "first")
        try await first.record(mine.success(1))
        var theirs = EventScript(taskName: "second")
        try await second.record(theirs.success(2))
        #expect(try await second.record(for: mine.uuid)?.result == 1)
        #expect(try await first.record(for: theirs.uuid)?.result == 2)

        // 300 tasks: the first store writes their `received` and `started`,
        // the second their end, in batches of 20 tasks, concurrently.
        var scripts = (0..<300).map { _ in EventScript(taskName: "shared") }
        var starts: [[TaskEvent]] = []
        var ends: [[TaskEvent]] = []
        for chunk in stride(from: 0, to: scripts.count, by: 20) {
            var start: [TaskEvent] = []
            var end: [TaskEvent] = []
            for index in chunk..<chunk + 20 {
                start += [scripts[index].received(), scripts[index].next(.started)]
                end.append(scripts[index].succeeded(.int(Int64(index))))
            }
            starts.append(start)
            ends.append(end)
        }
        async let writingStarts: Void = { for batch in starts { try await first.record(batch) } }()
        async let writingEnds: Void = { for batch in ends { try await second.record(batch) } }()
        _ = try await (writingStarts, writingEnds)

        for (index, script) in scripts.enumerated() {
            let record = try await first.record(for: script.uuid)
            #expect(record?.status == .success)
            #expect(record?.result == .int(Int64(index)))
            #expect(record?.events.count == 3)
        }
        let listed = try await second.records(matching: TaskRecordQuery(taskName: "shared", limit: 1000))
        #expect(listed.count == 300)
        await first.close()
        await second.close()
    }

    /// The bound on finished records holds exactly when batches of two
    /// stores on one file interleave, and when one store writes several
    /// batches at once (each store keeps a count of finished rows between
    /// batches; it must notice the other's writes).
    @Test func theBoundHoldsWithSeveralWritersOnOneFile() async throws {
        let directory = try ScratchDirectory()
        defer { directory.remove() }
        let path = "\(directory.path)/results.db"
        let configuration = ResultStoreConfiguration(maxRecords: 25)
        let first = try await SQLiteResultStore.open(path: path, configuration: configuration)
        let second = try await SQLiteResultStore.open(path: path, configuration: configuration)
        let start = Date().addingTimeInterval(-600)
        var newest: [String] = []
        for round in 0..<12 {
            var batch: [TaskEvent] = []
            for index in 0..<7 {
                var script = EventScript(start: start.addingTimeInterval(Double(round * 10 + index)))
                batch += script.success()
                newest.append(script.uuid)
            }
            // An unfinished task too: the bound leaves it alone.
            var running = EventScript(start: start)
            batch += [running.received(), running.next(.started)]
            try await (round.isMultiple(of: 3) ? second : first).record(batch)
            let finished = try await first.textsForTesting("SELECT count(*) FROM qtasks_tasks WHERE finished = 1")
            #expect(finished == [String(min(25, (round + 1) * 7))])
        }
        let kept = try await second.records(matching: TaskRecordQuery(statuses: [.success], limit: 100))
        #expect(kept.map(\.uuid) == newest.suffix(25).reversed())
        #expect(try await first.records(matching: TaskRecordQuery(statuses: [.process], limit: 100)).count == 12)

        // Concurrent batches of one store.
        try await withThrowingTaskGroup(of: Void.self) { group in
            for round in 0..<8 {
                group.addTask {
                    var batch: [TaskEvent] = []
                    for index in 0..<5 {
                        var script = EventScript(start: start.addingTimeInterval(Double(200 + round * 10 + index)))
                        batch += script.success()
                    }
                    try await first.record(batch)
                }
            }
            try await group.waitForAll()
        }
        #expect(try await second.textsForTesting("SELECT count(*) FROM qtasks_tasks WHERE finished = 1") == ["25"])
        await first.close()
        await second.close()
    }

    /// Workers starting together on a new file: every one opens it (the
    /// schema is created once).
    @Test func storesOpeningANewFileTogetherAllOpenIt() async throws {
        let directory = try ScratchDirectory()
        defer { directory.remove() }
        let path = "\(directory.path)/results.db"
        let stores = try await withThrowingTaskGroup(of: SQLiteResultStore.self) { group in
            for _ in 0..<4 { group.addTask { try await SQLiteResultStore.open(path: path) } }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(stores.count == 4)
        var script = EventScript()
        try await stores[0].record(script.success())
        for store in stores {
            #expect(try await store.record(for: script.uuid)?.status == .success)
        }
        let migrations = try await stores[0].textsForTesting("SELECT identifier FROM grdb_migrations")
        #expect(migrations == ["qtasks_results_v1", "qtasks_workflows_v1"])
        for store in stores { await store.close() }
    }

    /// The columns, and a `record` that `TaskRecord`'s own `Codable` reads.
    @Test func theRecordColumnIsTheTaskRecordsJSON() async throws {
        let directory = try ScratchDirectory()
        defer { directory.remove() }
        let store = try await SQLiteResultStore.open(path: "\(directory.path)/results.db")
        var script = EventScript(taskName: "report", queue: "slow")
        var events = [script.received(args: ["a/b", 1], kwargs: ["k": ["é": [true, .null]]], priority: 3)]
        events.append(script.next(.started))
        events.append(script.failure(.retried, attempt: 1, message: "line 1\nline \"2\""))
        try await store.record(events)
        let record = try #require(try await store.record(for: script.uuid))

        let columns = try await store.textsForTesting(
            "SELECT task_name || '|' || queue || '|' || status || '|' || finished FROM qtasks_tasks")
        #expect(columns == ["report|slow|retry|0"])
        let times = try await store.textsForTesting("SELECT updated_at || '|' || (expires_at - updated_at) FROM qtasks_tasks")
        let parts = try #require(times.first??.split(separator: "|").compactMap { Double($0) })
        #expect(parts.count == 2)
        #expect(abs(parts[0] - record.updatedAt.timeIntervalSince1970) < 1e-6)
        #expect(abs(parts[1] - 86_400) < 1e-3)

        let text = try #require(try await store.textsForTesting("SELECT record FROM qtasks_tasks").first ?? nil)
        let decoded = try JSONDecoder().decode(TaskRecord.self, from: Data(text.utf8))
        #expect(decoded.uuid == record.uuid)
        #expect(decoded.arguments == record.arguments)
        #expect(decoded.failure == record.failure)
        #expect(decoded.retryDelay == record.retryDelay)
        #expect(decoded.events.map(\.kind) == record.events.map(\.kind))
        #expect(abs(decoded.updatedAt.timeIntervalSince(record.updatedAt)) < 1e-6)
        #expect(abs(decoded.createdAt.timeIntervalSince(record.createdAt)) < 1e-6)
        // Not escaped: slashes and non-ASCII text stay as they are.
        #expect(text.contains(#""a/b""#))
        #expect(text.contains("é"))
        await store.close()
    }

    /// A row whose JSON does not decode: reading it says `corrupt` (naming
    /// the task and the file); the task's next event replaces it instead of
    /// failing every batch.
    @Test func aCorruptRowIsReportedAndReplacedByTheNextEvent() async throws {
        let directory = try ScratchDirectory()
        defer { directory.remove() }
        let path = "\(directory.path)/results.db"
        let store = try await SQLiteResultStore.open(path: path)
        var script = EventScript()
        try await store.record([script.received(), script.next(.started)])
        try await store.executeForTesting(
            "UPDATE qtasks_tasks SET record = '{\"uuid\": broken' WHERE uuid = ?", arguments: [script.uuid])

        let error = await #expect(throws: ResultStoreError.self) { _ = try await store.record(for: script.uuid) }
        #expect(error?.code == .corrupt)
        #expect(error?.message.contains(script.uuid) == true)
        #expect(error?.message.contains(path) == true)
        let listing = await #expect(throws: ResultStoreError.self) {
            _ = try await store.records(matching: TaskRecordQuery())
        }
        #expect(listing?.code == .corrupt)

        try await store.record([script.succeeded(7)])
        let record = try #require(try await store.record(for: script.uuid))
        #expect(record.status == .success)
        #expect(record.result == 7)
        await store.close()
    }

    /// Expired rows are not read, and a later batch deletes them.
    @Test func expiredRowsAreDeletedByALaterBatch() async throws {
        let directory = try ScratchDirectory()
        defer { directory.remove() }
        let store = try await SQLiteResultStore.open(
            path: "\(directory.path)/results.db", configuration: ResultStoreConfiguration(timeToLive: .seconds(60)))
        var old = EventScript()
        try await store.record(old.success())
        try await store.recordHeartbeat(heartbeat("gone", expiresIn: 60))
        // Age them past their time-to-live.
        try await store.executeForTesting("UPDATE qtasks_tasks SET expires_at = expires_at - 120")
        try await store.executeForTesting("UPDATE qtasks_workers SET expires_at = expires_at - 120")
        #expect(try await store.record(for: old.uuid) == nil)
        #expect(try await store.liveWorkers().isEmpty)
        #expect(try await store.textsForTesting("SELECT count(*) FROM qtasks_tasks") == ["1"])

        // The sweep runs at most once a second per process.
        try await Task.sleep(for: .milliseconds(1100))
        var new = EventScript()
        try await store.record(new.success())
        #expect(try await store.textsForTesting("SELECT uuid FROM qtasks_tasks") == [new.uuid])
        #expect(try await store.textsForTesting("SELECT count(*) FROM qtasks_workers") == ["0"])

        // An expired record counts as missing: its task starts a new one.
        try await store.executeForTesting("UPDATE qtasks_tasks SET expires_at = expires_at - 120")
        try await store.record([new.next(.requeued)])
        let record = try #require(try await store.record(for: new.uuid))
        #expect(record.events.map(\.kind) == [.requeued])
        await store.close()
    }

    @Test func aClosedStoreRefusesEveryCall() async throws {
        let directory = try ScratchDirectory()
        defer { directory.remove() }
        let store = try await SQLiteResultStore.open(path: "\(directory.path)/results.db")
        await store.close()
        var script = EventScript()
        let calls: [@Sendable () async throws -> Void] = [
            { [script] in var script = script; try await store.record(script.success()) },
            { try await store.recordHeartbeat(heartbeat("w", expiresIn: 5)) },
            { _ = try await store.records(matching: TaskRecordQuery()) },
            { _ = try await store.records(matching: TaskRecordQuery(limit: 0)) },
            { _ = try await store.liveWorkers() },
        ]
        _ = script.next(.received)
        for call in calls {
            let error = await #expect(throws: ResultStoreError.self) { try await call() }
            #expect(error?.code == .closed)
            #expect(error?.message.contains(store.path) == true)
        }
        await store.close()
    }

    // MARK: - Measurement

    /// What batches cost, printed (no assertions: the benchmark measures
    /// performance, tests do not). Runs only with
    /// `QTASKS_RESULTS_MEASURE=1`; build with `-c release` for figures that
    /// mean anything (`swift build -c release --build-tests -Xswiftc
    /// -enable-testing`).
    @Test(.enabled(if: ProcessInfo.processInfo.environment["QTASKS_RESULTS_MEASURE"] == "1"))
    func measureBatches() async throws {
        let directory = try ScratchDirectory()
        defer { directory.remove() }
        let environment = ProcessInfo.processInfo.environment
        let prefill = Int(environment["QTASKS_RESULTS_MEASURE_PREFILL"] ?? "") ?? 100_000
        // QTASKS_RESULTS_MEASURE_FILE: keep the database there, to look at.
        let path = environment["QTASKS_RESULTS_MEASURE_FILE"] ?? "\(directory.path)/results.db"
        let store = try await SQLiteResultStore.open(path: path)
        let clock = ContinuousClock()
        func report(_ label: String, _ durations: [Duration]) {
            let ms = durations.map { Seconds.double($0) * 1000 }.sorted()
            let text = ms.map { String(format: "%.1f", $0) }.joined(separator: " ")
            print("measure: \(label): median \(String(format: "%.1f", ms[ms.count / 2])) ms; all: \(text)")
        }
        func tasks(_ count: Int) -> [EventScript] {
            (0..<count).map { _ in EventScript(taskName: "bench.add", queue: "default") }
        }

        // 1,667 tasks × (received, started, succeeded) = 5,001 events; the
        // first ten batches into the new file are measured on their own.
        var filled = 0
        var empty: [Duration] = []
        let fillStart = clock.now
        while filled < prefill {
            var scripts = tasks(1667)
            var batch: [TaskEvent] = []
            for index in scripts.indices { batch += scripts[index].success(.int(Int64(index))) }
            let start = clock.now
            try await store.record(batch)
            if empty.count < 10 { empty.append(clock.now - start) }
            filled += 1667
        }
        print("measure: prefill \(filled) records in \(clock.now - fillStart)")
        report("5,001 events, 1,667 new tasks, into a new file (the first 10 batches)", empty)

        // Each task's three events in one batch (new rows only).
        var whole: [Duration] = []
        for _ in 0..<10 {
            var scripts = tasks(1667)
            var batch: [TaskEvent] = []
            for index in scripts.indices { batch += scripts[index].success(.int(Int64(index))) }
            let start = clock.now
            try await store.record(batch)
            whole.append(clock.now - start)
        }
        report("5,001 events, 1,667 new tasks, \(filled) finished records kept", whole)

        // Tasks split over batches: each batch ends 1,667 tasks begun in the
        // previous one (reading and decoding their records) and begins 1,667.
        var pending = tasks(1667)
        var first: [TaskEvent] = []
        for index in pending.indices { first += [pending[index].received(), pending[index].next(.started)] }
        try await store.record(first)
        var split: [Duration] = []
        for _ in 0..<10 {
            var next = tasks(1667)
            var batch: [TaskEvent] = []
            for index in pending.indices { batch.append(pending[index].succeeded(.int(Int64(index)))) }
            for index in next.indices { batch += [next[index].received(), next[index].next(.started)] }
            let start = clock.now
            try await store.record(batch)
            split.append(clock.now - start)
            pending = next
        }
        report("5,001 events, 1,667 tasks ended + 1,667 begun", split)

        // The record's JSON alone.
        var scripts = tasks(1667)
        let records = scripts.indices.map { index in
            var record = TaskRecord(first: scripts[index].received())
            record.apply(scripts[index].next(.started))
            record.apply(scripts[index].succeeded(.int(Int64(index))))
            return record
        }
        // (Not JSONDecoder: JSONValue's Codable reading throws and catches
        // errors, and under Swift Testing every throw records a backtrace.)
        var encodeTimes: [Duration] = []
        var decodeTimes: [Duration] = []
        var codableEncode: [Duration] = []
        for _ in 0..<5 {
            var start = clock.now
            let texts = records.map { TaskRecordJSON.encode($0) }
            encodeTimes.append(clock.now - start)
            start = clock.now
            for text in texts { _ = try TaskRecordJSON.decode(text.utf8) }
            decodeTimes.append(clock.now - start)
            start = clock.now
            let encoder = JSONEncoder()
            _ = try records.map { try encoder.encode($0) }
            codableEncode.append(clock.now - start)
        }
        report("encode 1,667 records (TaskRecordJSON)", encodeTimes)
        report("decode 1,667 records (TaskRecordJSON)", decodeTimes)
        report("encode 1,667 records (JSONEncoder, for comparison)", codableEncode)
        print("measure: record JSON is \(TaskRecordJSON.encode(records[0]).utf8.count) bytes")
        await store.close()
    }
}

// MARK: - Helpers

/// A directory of its own under the temporary directory.
private struct ScratchDirectory {
    let path: String

    init() throws {
        path = NSTemporaryDirectory() + "qtasks-sqlite-results-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    func remove() { try? FileManager.default.removeItem(atPath: path) }
}

private func heartbeat(_ id: String, expiresIn seconds: Double) -> WorkerHeartbeat {
    let now = Date()
    return WorkerHeartbeat(
        workerID: id, host: "h", pid: 1, queues: ["default"], concurrency: 4, inFlight: 0, processed: 0, failed: 0,
        retried: 0, startedAt: now, sentAt: now, expiresAt: now.addingTimeInterval(seconds))
}
