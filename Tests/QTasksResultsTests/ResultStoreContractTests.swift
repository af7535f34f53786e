import Foundation
import QTasks
import Testing

/// The result-store contract (docs/results.md), one suite run against every
/// backend: memory, a real SQLite file, a real Redis.
@Suite("Result store contract")
struct ResultStoreContractTests {
    @Test(arguments: ResultBackend.available)
    func aSuccessfulRunIsRecordedWithItsResultArgumentsAndEvents(_ backend: ResultBackend) async throws {
        try await withResultStore(backend) { store in
            var script = EventScript(taskName: "billing.add", queue: "orders")
            let received = script.received(args: [2, "three", ["x": 1.5]], kwargs: ["note": "héllo"], priority: 7)
            var started = script.next(.started)
            started.traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
            let succeeded = script.succeeded(["sum": 5, "items": [1, 2]])
            try await store.record([received, started, succeeded])

            let record = try #require(try await store.record(for: script.uuid))
            #expect(record.uuid == script.uuid)
            #expect(record.taskName == "billing.add")
            #expect(record.queue == "orders")
            #expect(record.status == .success)
            #expect(record.isFinished)
            #expect(record.result == ["sum": 5, "items": [1, 2]])
            #expect(record.failure == nil)
            #expect(record.arguments == RecordedArguments(args: [2, "three", ["x": 1.5]], kwargs: ["note": "héllo"]))
            #expect(record.priority == 7)
            #expect(record.attempt == 1)
            #expect(record.workerID == script.worker)
            #expect(record.traceID == "4bf92f3577b34da6a3ce929d0e0e4736")
            // Times to the millisecond: what every backend keeps.
            #expect(sameMillisecond(record.createdAt, received.createdAt))
            #expect(sameMillisecond(record.startedAt, started.timestamp))
            #expect(sameMillisecond(record.finishedAt, succeeded.timestamp))
            #expect(sameMillisecond(record.updatedAt, succeeded.timestamp))
            #expect(record.duration == .milliseconds(3))
            #expect(record.events.map(\.kind) == [.received, .started, .succeeded])
            // The history does not repeat the arguments and the result.
            #expect(record.events.allSatisfy { $0.arguments == nil && $0.result == nil })

            let typed = try TaskHandle<[String: JSONValue]>.value(of: record.taskResult)
            #expect(typed["sum"] == 5)
        }
    }

    @Test(arguments: ResultBackend.available)
    func statusFollowsTheLifecycle(_ backend: ResultBackend) async throws {
        try await withResultStore(backend) { store in
            var script = EventScript()
            try await store.record([script.received()])
            #expect(try await store.record(for: script.uuid)?.status == .new)
            try await store.record([script.next(.started)])
            #expect(try await store.record(for: script.uuid)?.status == .process)
            try await store.record([script.next(.requeued)])
            #expect(try await store.record(for: script.uuid)?.status == .new)
            try await store.record([script.received(), script.next(.started)])
            #expect(try await store.record(for: script.uuid)?.status == .process)
            try await store.record([script.next(.cancelled)])
            let record = try #require(try await store.record(for: script.uuid))
            #expect(record.status == .cancel)
            #expect(record.isFinished)
            #expect(throws: TaskFailedError.self) { try TaskHandle<Int>.value(of: record.taskResult) }
        }
    }

    @Test(arguments: ResultBackend.available)
    func aRetriedThenDeadLetteredTaskKeepsEveryAttempt(_ backend: ResultBackend) async throws {
        try await withResultStore(backend) { store in
            var script = EventScript(taskName: "charge")
            var retried = script.failure(.retried, attempt: 1, message: "card network down")
            retried.retryDelay = .milliseconds(1500)
            try await store.record([script.received(), script.next(.started), retried])

            let waiting = try #require(try await store.record(for: script.uuid))
            #expect(waiting.status == .retry)
            #expect(!waiting.isFinished)
            #expect(waiting.retryDelay == .milliseconds(1500))
            #expect(waiting.failure?.message == "card network down")

            var deadLettered = script.failure(.deadLettered, attempt: 2, message: "card declined")
            deadLettered.deadLetterQueue = "default.dlq"
            try await store.record([
                script.received(attempt: 2), script.next(.started, attempt: 2),
                script.failure(.failed, attempt: 2, message: "card declined"), deadLettered,
            ])
            let record = try #require(try await store.record(for: script.uuid))
            #expect(record.status == .error)
            #expect(record.attempt == 2)
            #expect(record.deadLetterQueue == "default.dlq")
            #expect(record.failure == TaskEvent.Failure(type: "TestError", message: "card declined", traceback: "TestError: card declined"))
            #expect(record.retryDelay == nil)
            #expect(record.result == nil)
            #expect(record.events.map(\.kind) == [.received, .started, .retried, .received, .started, .failed, .deadLettered])
            #expect(record.events.map(\.attempt) == [1, 1, 1, 2, 2, 2, 2])
            #expect(record.events[2].retryDelay == .milliseconds(1500))

            let error = try #require(throws: TaskFailedError.self) { try TaskHandle<Int>.value(of: record.taskResult) }
            #expect(error.code == .failed)
            #expect(error.traceback?.contains("card declined") == true)
            #expect(record.taskResult.retry == 1)
        }
    }

    @Test(arguments: ResultBackend.available)
    func aDuplicateDeliveryAfterTheEndLeavesTheOutcome(_ backend: ResultBackend) async throws {
        try await withResultStore(backend) { store in
            var script = EventScript()
            try await store.record(script.success(5))
            try await store.record([script.received(), script.next(.started)])
            let record = try #require(try await store.record(for: script.uuid))
            #expect(record.status == .success)
            #expect(record.result == 5)
            #expect(record.events.count == 5)
        }
    }

    @Test(arguments: ResultBackend.available)
    func eventsSplitOverBatchesOrWrittenTwiceGiveTheSameRecord(_ backend: ResultBackend) async throws {
        try await withResultStore(backend) { store in
            var one = EventScript()
            let events = one.success(["ok": true])
            try await store.record(events)
            var other = EventScript(uuid: UUID().uuidString.lowercased())
            let split = other.success(["ok": true])
            for event in split { try await store.record([event]) }
            // A batch the worker retried after a failed write.
            try await store.record([split[2]])

            let whole = try #require(try await store.record(for: one.uuid))
            let pieces = try #require(try await store.record(for: other.uuid))
            #expect(whole.status == pieces.status)
            #expect(whole.result == pieces.result)
            #expect(whole.arguments == pieces.arguments)
            #expect(whole.attempt == pieces.attempt)
        }
    }

    @Test(arguments: ResultBackend.available)
    func manyTasksInOneBatchAreEachRecorded(_ backend: ResultBackend) async throws {
        try await withResultStore(backend) { store in
            var scripts = (0..<200).map { _ in EventScript() }
            var batch: [TaskEvent] = []
            for index in scripts.indices { batch += scripts[index].success(.int(Int64(index))) }
            try await store.record(batch)
            for (index, script) in scripts.enumerated() {
                #expect(try await store.record(for: script.uuid)?.result == .int(Int64(index)))
            }
            #expect(try await store.records(matching: TaskRecordQuery(limit: 1000)).count == 200)
        }
    }

    @Test(arguments: ResultBackend.available)
    func queriesFilterAndPageNewestFirst(_ backend: ResultBackend) async throws {
        try await withResultStore(backend) { store in
            let start = Date().addingTimeInterval(-60)
            var batch: [TaskEvent] = []
            var uuids: [String] = []
            for index in 0..<6 {
                var script = EventScript(
                    taskName: index.isMultiple(of: 2) ? "add" : "mul", queue: index < 3 ? "a" : "b",
                    start: start.addingTimeInterval(Double(index)))
                if index == 4 {
                    batch += [script.received(), script.next(.started), script.failure(.failed, attempt: 1)]
                } else {
                    batch += script.success(.int(Int64(index)))
                }
                uuids.append(script.uuid)
            }
            try await store.record(batch)

            let all = try await store.records(matching: TaskRecordQuery())
            #expect(all.map(\.uuid) == uuids.reversed())
            #expect(try await store.records(matching: TaskRecordQuery(statuses: [.error])).map(\.uuid) == [uuids[4]])
            #expect(try await store.records(matching: TaskRecordQuery(taskName: "mul")).map(\.uuid) == [uuids[5], uuids[3], uuids[1]])
            #expect(try await store.records(matching: TaskRecordQuery(queue: "a")).map(\.uuid) == [uuids[2], uuids[1], uuids[0]])
            let since = start.addingTimeInterval(3)
            #expect(try await store.records(matching: TaskRecordQuery(since: since)).map(\.uuid) == [uuids[5], uuids[4], uuids[3]])
            #expect(try await store.records(matching: TaskRecordQuery(until: since)).map(\.uuid) == [uuids[2], uuids[1], uuids[0]])
            #expect(try await store.records(matching: TaskRecordQuery(limit: 2, offset: 1)).map(\.uuid) == [uuids[4], uuids[3]])
            #expect(try await store.records(matching: TaskRecordQuery(statuses: [.success], taskName: "add", queue: "a")).map(\.uuid) == [uuids[2], uuids[0]])
            // Offsets past every record, up to Int.max (`qtasks tasks --offset`): none, no trap.
            #expect(try await store.records(matching: TaskRecordQuery(limit: 10, offset: 6)).isEmpty)
            #expect(try await store.records(matching: TaskRecordQuery(limit: 100_000, offset: Int.max)).isEmpty)
            #expect(try await store.records(matching: TaskRecordQuery(limit: Int.max, offset: Int.max - 5)).isEmpty)
        }
    }

    @Test(arguments: ResultBackend.available)
    func recordsExpireAfterTheirTimeToLive(_ backend: ResultBackend) async throws {
        // Long enough to read the record back on a loaded machine, short
        // enough to wait for.
        try await withResultStore(backend, configuration: ResultStoreConfiguration(timeToLive: .seconds(3))) { store in
            var script = EventScript()
            try await store.record(script.success())
            #expect(try await store.record(for: script.uuid)?.status == .success)
            let gone = try await eventually(timeout: .seconds(30)) {
                try await store.record(for: script.uuid) == nil
            }
            #expect(gone)
            #expect(try await store.records(matching: TaskRecordQuery()).isEmpty)
        }
    }

    @Test(arguments: ResultBackend.available)
    func theOldestFinishedRecordsGoPastTheBound(_ backend: ResultBackend) async throws {
        try await withResultStore(backend, configuration: ResultStoreConfiguration(maxRecords: 3)) { store in
            let start = Date().addingTimeInterval(-60)
            // Unfinished and oldest: bounded by the time-to-live only.
            var running = EventScript(start: start)
            try await store.record([running.received(), running.next(.started)])
            var finished: [String] = []
            for index in 1...5 {
                var script = EventScript(start: start.addingTimeInterval(Double(index)))
                try await store.record(script.success(.int(Int64(index))))
                finished.append(script.uuid)
            }
            #expect(try await store.record(for: running.uuid)?.status == .process)
            for uuid in finished.prefix(2) { #expect(try await store.record(for: uuid) == nil) }
            for uuid in finished.suffix(3) { #expect(try await store.record(for: uuid)?.status == .success) }
            let listed = try await store.records(matching: TaskRecordQuery(statuses: [.success]))
            #expect(listed.map(\.uuid) == finished.suffix(3).reversed())
        }
    }

    @Test(arguments: ResultBackend.available)
    func aRecordKeepsItsNewestEvents(_ backend: ResultBackend) async throws {
        try await withResultStore(backend, configuration: ResultStoreConfiguration(maxEventsPerRecord: 4)) { store in
            var script = EventScript()
            var events: [TaskEvent] = []
            for attempt in 1...3 {
                events += [script.received(attempt: attempt), script.next(.started, attempt: attempt), script.failure(.retried, attempt: attempt)]
            }
            try await store.record(events)
            let record = try #require(try await store.record(for: script.uuid))
            #expect(record.events.count == 4)
            #expect(record.events.map(\.kind) == [.retried, .received, .started, .retried])
            #expect(record.events.last?.attempt == 3)
            #expect(record.attempt == 3)
        }
    }

    @Test(arguments: ResultBackend.available)
    func secretAndTruncatedArgumentsStayThatWay(_ backend: ResultBackend) async throws {
        try await withResultStore(backend) { store in
            var secret = EventScript()
            var received = secret.received()
            received.arguments = .omitted
            try await store.record([received])
            #expect(try await store.record(for: secret.uuid)?.arguments == .omitted)

            var large = EventScript()
            var big = large.received()
            big.arguments = .bounded(args: [.string(String(repeating: "é", count: 5000))], kwargs: [:], maxBytes: 100)
            try await store.record([big])
            let arguments = try #require(try await store.record(for: large.uuid)?.arguments)
            #expect(arguments.truncated)
            #expect(arguments.args.isEmpty)
            #expect((arguments.text?.utf8.count ?? 0) <= 100)
            #expect(arguments.text?.hasPrefix("{\"args\":[\"éé") == true)
        }
    }

    @Test(arguments: ResultBackend.available)
    func heartbeatsListLiveWorkersUntilTheyExpireOrLeave(_ backend: ResultBackend) async throws {
        try await withResultStore(backend) { store in
            let now = Date()
            func beat(_ id: String, ttl: Double, online: Bool = true, sentAt: Date = now) -> WorkerHeartbeat {
                WorkerHeartbeat(
                    workerID: id, host: "h", pid: 42, queues: ["default", "other"], concurrency: 10, inFlight: 2,
                    processed: 100, failed: 3, retried: 1, startedAt: now.addingTimeInterval(-60), sentAt: sentAt,
                    expiresAt: sentAt.addingTimeInterval(ttl), isOnline: online)
            }
            // Ten minutes: listed however long a loaded machine takes to
            // get to the listing (a 4 s time-to-live from `now` failed
            // there once, at load average 15).
            try await store.recordHeartbeat(beat("w1", ttl: 600))
            try await store.recordHeartbeat(beat("w2", ttl: 600))
            try await store.recordHeartbeat(beat("w3", ttl: 600))
            let workers = try await store.liveWorkers()
            #expect(workers.map(\.workerID) == ["w1", "w2", "w3"])
            let first = try #require(workers.first)
            #expect(first.queues == ["default", "other"])
            #expect(first.processed == 100 && first.failed == 3 && first.inFlight == 2 && first.retried == 1)
            #expect(abs(first.startedAt.timeIntervalSince(now.addingTimeInterval(-60))) < 0.001)

            // w3's next heartbeat has a short life and w2 leaves. The expiry
            // is short, the wait for it long: no deadline the machine's
            // speed decides.
            try await store.recordHeartbeat(beat("w3", ttl: 1, sentAt: Date()))
            try await store.recordHeartbeat(beat("w2", ttl: 0, online: false))
            let expired = try await eventually(timeout: .seconds(30)) {
                try await store.liveWorkers().map(\.workerID) == ["w1"]
            }
            #expect(expired)
        }
    }

    @Test(arguments: ResultBackend.available)
    func waitingReturnsTheEndOrTimesOutSayingWhy(_ backend: ResultBackend) async throws {
        try await withResultStore(backend) { store in
            let definition = TaskDefinition("add", arguments: Int.self, Int.self, returning: Int.self)
            var script = EventScript()
            try await store.record([script.received(), script.next(.started)])
            let error = try await #require(throws: ResultStoreError.self) {
                try await store.waitForRecord(of: script.uuid, timeout: .milliseconds(200))
            }
            #expect(error.code == .timedOut)
            #expect(error.message.contains("process"))
            let missing = try await #require(throws: ResultStoreError.self) {
                try await store.waitForRecord(of: "no-such-task", timeout: .milliseconds(100))
            }
            #expect(missing.message.contains("no record"))

            let finish = script.succeeded(9)
            async let value = store.value(of: definition, uuid: script.uuid, timeout: .seconds(30))
            try await store.record([finish])
            #expect(try await value == 9)
        }
    }

    @Test(arguments: ResultBackend.available)
    func eventsWithoutAUUIDAreIgnoredAndAClosedStoreSaysSo(_ backend: ResultBackend) async throws {
        try await withResultStore(backend) { store in
            var script = EventScript(uuid: "")
            try await store.record(script.success())
            #expect(try await store.records(matching: TaskRecordQuery()).isEmpty)
            await store.close()
            let error = await #expect(throws: ResultStoreError.self) { _ = try await store.record(for: "x") }
            #expect(error?.code == .closed)
            await store.close()  // twice is fine
        }
    }
}
