import Foundation
import QTasks
import QTasksResultStores
import QTasksResultsRedis
import TestSupport
import Testing

/// The Redis result store's layout (Python QTasks 1.7.3's hash and
/// in-flight set, our indexes and heartbeats), read back with `redis-cli`
/// as a QTasks reader would see it.
@Suite(
    "Redis result store layout",
    .enabled(if: TestRedis.enabled, "no Redis at QTASKS_REDIS_URL; deploy/redis.sh start"))
struct RedisResultStoreTests {
    /// A store under a prefix of its own, its keys deleted afterwards.
    func withStore<T>(
        _ configuration: ResultStoreConfiguration = ResultStoreConfiguration(),
        _ body: (RedisResultStore, String) async throws -> T
    ) async throws -> T {
        var configuration = configuration
        let prefix = "qtasks-test-" + UUID().uuidString.prefix(8).lowercased()
        configuration.keyPrefix = prefix
        defer { try? TestRedis.deleteKeys(prefix: prefix) }
        let store = try await RedisResultStore.open(url: TestRedis.url, configuration: configuration)
        do {
            let result = try await body(store, prefix)
            await store.close()
            return result
        } catch {
            await store.close()
            throw error
        }
    }

    /// `HGETALL key` as a dictionary (through Lua's cjson, so that any
    /// value comes back exactly).
    func hash(_ key: String) throws -> [String: String] {
        let text = try TestRedis.cli(["EVAL", "return cjson.encode(redis.call('HGETALL', KEYS[1]))", "1", key])
        // cjson encodes an empty table (no such key) as an object.
        let values = (try? JSONDecoder().decode([String].self, from: Data(text.utf8))) ?? []
        var result: [String: String] = [:]
        var index = 0
        while index + 1 < values.count {
            result[values[index]] = values[index + 1]
            index += 2
        }
        return result
    }

    func sortedSet(_ key: String) throws -> [String] {
        try TestRedis.cli(["ZRANGE", key, "0", "-1"]).split(separator: "\n").map(String.init)
    }

    func parse(_ text: String?) -> JSONValue? {
        text.flatMap { try? JSONDecoder().decode(JSONValue.self, from: Data($0.utf8)) }
    }

    @Test func aSuccessIsAQTasksHashWithOurFieldsBesides() async throws {
        try await withStore { store, prefix in
            var script = EventScript(taskName: "billing.add", queue: "orders")
            let received = script.received(args: [2, "three"], kwargs: ["note": "héllo"], priority: 7)
            var started = script.next(.started)
            started.traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
            try await store.record([received, started])

            let key = "\(prefix):\(script.uuid)"
            var fields = try hash(key)
            #expect(fields["status"] == "process")
            #expect(try sortedSet("\(prefix):task_process") == ["billing.add:\(script.uuid):7"])
            #expect(try TestRedis.cli(["ZSCORE", "\(prefix):task_process", "billing.add:\(script.uuid):7"]).hasPrefix("7"))

            let succeeded = script.succeeded(["sum": 5])
            try await store.record([succeeded])
            fields = try hash(key)
            #expect(fields["task_name"] == "billing.add")
            #expect(fields["priority"] == "7")
            #expect(fields["status"] == "success")
            #expect(parse(fields["args"]) == [2, "three"])
            #expect(parse(fields["kwargs"]) == ["note": "héllo"])
            #expect(parse(fields["returning"]) == ["sum": 5])
            #expect(fields["traceback"] == nil)
            #expect(fields["retry"] == "0")
            let created = try #require(fields["created_at"].flatMap(Double.init))
            let updated = try #require(fields["updated_at"].flatMap(Double.init))
            #expect(abs(created - received.createdAt!.timeIntervalSince1970) < 1e-6)
            #expect(abs(updated - succeeded.timestamp.timeIntervalSince1970) < 1e-6)
            #expect(fields["queue"] == "orders")
            #expect(fields["attempt"] == "1")
            #expect(fields["worker_id"] == script.worker)
            #expect(fields["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736")
            let record = try JSONDecoder().decode(TaskRecord.self, from: Data(try #require(fields["qtasks_record"]).utf8))
            #expect(record.status == .success && record.result == ["sum": 5])
            // Out of the in-flight set; in both indexes.
            #expect(try sortedSet("\(prefix):task_process").isEmpty)
            #expect(try sortedSet("\(prefix):qtasks_index:updated") == [script.uuid])
            #expect(try sortedSet("\(prefix):qtasks_index:finished") == [script.uuid])
            // Every key expires.
            for key in [key, "\(prefix):qtasks_index:updated", "\(prefix):qtasks_index:finished"] {
                let ttl = Int(try TestRedis.cli(["PTTL", key]).trimmingCharacters(in: .whitespacesAndNewlines)) ?? -3
                #expect(ttl > 0 && ttl <= 24 * 3600 * 1000, "\(key): \(ttl)")
            }
        }
    }

    @Test func anErrorCarriesItsTracebackAndLeavesNoStaleFields() async throws {
        try await withStore { store, prefix in
            var script = EventScript(taskName: "charge")
            var retried = script.failure(.retried, attempt: 1, message: "network down")
            retried.retryDelay = .seconds(2)
            try await store.record([script.received(), script.next(.started), retried])
            let key = "\(prefix):\(script.uuid)"
            var fields = try hash(key)
            #expect(fields["status"] == "retry")
            #expect(fields["error_message"] == "network down")
            #expect(fields["traceback"] == nil)
            #expect(try sortedSet("\(prefix):task_process").isEmpty)

            var deadLettered = script.failure(.deadLettered, attempt: 2, message: "declined")
            deadLettered.deadLetterQueue = "default.dlq"
            try await store.record([
                script.received(attempt: 2), script.next(.started, attempt: 2),
                script.failure(.failed, attempt: 2, message: "declined"), deadLettered,
            ])
            fields = try hash(key)
            #expect(fields["status"] == "error")
            #expect(fields["traceback"] == "TestError: declined")
            #expect(fields["error_type"] == "TestError")
            #expect(fields["error_message"] == "declined")
            #expect(fields["dead_letter_queue"] == "default.dlq")
            #expect(fields["retry"] == "1")
            #expect(fields["attempt"] == "2")
            #expect(fields["returning"] == nil)

            // A duplicate delivery that succeeds replaces the outcome: the
            // error's fields go.
            try await store.record([script.received(attempt: 3), script.next(.started, attempt: 3), script.succeeded(1, attempt: 3)])
            fields = try hash(key)
            #expect(fields["status"] == "success")
            #expect(fields["returning"] == "1")
            for gone in ["traceback", "error_type", "error_message"] { #expect(fields[gone] == nil, "\(gone)") }
            #expect(fields["dead_letter_queue"] == "default.dlq")
        }
    }

    @Test func aCancelledTaskHasQTasksCancelFields() async throws {
        try await withStore { store, prefix in
            var script = EventScript()
            try await store.record([script.received(), script.next(.started), script.next(.cancelled)])
            let fields = try hash("\(prefix):\(script.uuid)")
            #expect(fields["status"] == "cancel")
            #expect(fields["cancel_reason"] == "")
            #expect(try sortedSet("\(prefix):task_process").isEmpty)
        }
    }

    /// Three processes write the same tasks at once, as a sender (`sent`,
    /// with the arguments), a worker's `started` and its `succeeded` do a
    /// few milliseconds apart: each store has its own connection, so their
    /// read-modify-writes interleave. Every event of every task must be in
    /// its record, and no finished task left in `task_process`. With the
    /// plain read-then-write this lost an event (and the arguments with a
    /// `sent`) in most runs.
    @Test func concurrentWritersOfOneRecordLoseNoEvent() async throws {
        try await withStore { sender, prefix in
            var configuration = ResultStoreConfiguration()
            configuration.keyPrefix = prefix
            let starter = try await RedisResultStore.open(url: TestRedis.url, configuration: configuration)
            let finisher = try await RedisResultStore.open(url: TestRedis.url, configuration: configuration)
            var uuids: [String] = []
            do {
                uuids = try await Self.race(sender, starter, finisher)
            } catch {
                await starter.close()
                await finisher.close()
                throw error
            }
            await starter.close()
            await finisher.close()
            var lost: [String] = []
            for uuid in uuids {
                let record = try #require(try await sender.record(for: uuid))
                let kinds = Set(record.events.map(\.kind))
                if kinds != [.sent, .started, .succeeded] || record.arguments == nil || record.status != .success {
                    lost.append("\(uuid): \(record.status) \(record.events.map(\.kind)) arguments \(record.arguments.map { "\($0.args)" } ?? "none")")
                }
            }
            #expect(lost.isEmpty, "\(lost.count) of \(uuids.count) records lost events: \(lost.prefix(5))")
            #expect(try sortedSet("\(prefix):task_process").isEmpty, "finished tasks left in task_process")
            #expect(try sortedSet("\(prefix):qtasks_index:finished").count == uuids.count)
        }
    }

    /// 30 rounds of 10 tasks: each round's `sent` events (with arguments)
    /// through `sender`, `started` through `starter` and `succeeded`
    /// through `finisher`, the three batches at once. Returns the uuids.
    static func race(_ sender: RedisResultStore, _ starter: RedisResultStore, _ finisher: RedisResultStore) async throws
        -> [String]
    {
        var uuids: [String] = []
        for round in 0..<30 {
            var sent: [TaskEvent] = []
            var started: [TaskEvent] = []
            var finished: [TaskEvent] = []
            for index in 0..<10 {
                var script = EventScript(taskName: "add")
                var event = script.next(.sent)
                event.arguments = RecordedArguments(args: [.int(Int64(round)), .int(Int64(index))], kwargs: ["k": "v"])
                sent.append(event)
                started.append(script.next(.started))
                finished.append(script.succeeded(.int(Int64(round * 10 + index))))
                uuids.append(script.uuid)
            }
            async let one: Void = sender.record(sent)
            async let two: Void = starter.record(started)
            async let three: Void = finisher.record(finished)
            _ = try await (one, two, three)
        }
        return uuids
    }

    @Test func aRecordAQTasksProducerWroteKeepsItsArgumentsTimeAndPriority() async throws {
        try await withStore { store, prefix in
            // What QTasks' AsyncRedisStorage.add writes before publishing
            // (TaskStatusNewSchema), with JSON arguments (its Redis broker).
            let uuid = UUID().uuidString.lowercased()
            let key = "\(prefix):\(uuid)"
            let created = (Date().timeIntervalSince1970 * 4).rounded() / 4 - 1
            try TestRedis.cli([
                "HSET", key, "task_name", "add", "priority", "3", "args", "[2, 3]", "kwargs", "{\"x\": 1}",
                "created_at", String(created), "updated_at", String(created), "status", "new",
            ])
            let before = try #require(try await store.record(for: uuid))
            #expect(before.status == .new)
            #expect(before.arguments == RecordedArguments(args: [2, 3], kwargs: ["x": 1]))
            #expect(before.priority == 3)

            // Our worker's events without arguments, priority or creation time.
            var script = EventScript(uuid: uuid, start: Date())
            var received = script.next(.received)
            received.createdAt = nil
            try await store.record([received, script.next(.started), script.succeeded(5)])
            let record = try #require(try await store.record(for: uuid))
            #expect(record.status == .success)
            #expect(record.arguments == RecordedArguments(args: [2, 3], kwargs: ["x": 1]))
            #expect(record.priority == 3)
            #expect(record.createdAt == Date(timeIntervalSince1970: created))
            let fields = try hash(key)
            #expect(parse(fields["args"]) == [2, 3])
            #expect(parse(fields["kwargs"]) == ["x": 1])
            #expect(fields["created_at"].flatMap(Double.init) == created)
            #expect(fields["priority"] == "3")
        }
    }

    @Test func pythonReprArgumentsOfQTasksRabbitMQProducerAreReplacedByJSON() async throws {
        try await withStore { store, prefix in
            // QTasks 1.7.3's AsyncRabbitMQBroker writes str(args): not JSON.
            let uuid = UUID().uuidString.lowercased()
            let key = "\(prefix):\(uuid)"
            try TestRedis.cli([
                "HSET", key, "task_name", "add", "priority", "0", "args", "(2, 3)", "kwargs", "{'top': 1}",
                "created_at", String(Date().timeIntervalSince1970), "updated_at", String(Date().timeIntervalSince1970),
                "status", "new",
            ])
            let before = try #require(try await store.record(for: uuid))
            #expect(before.arguments == nil)
            var script = EventScript(uuid: uuid)
            try await store.record([script.received(args: [2, 3], kwargs: ["top": 1])])
            let fields = try hash(key)
            #expect(parse(fields["args"]) == [2, 3])
            #expect(parse(fields["kwargs"]) == ["top": 1])
            #expect(fields["status"] == "new")
        }
    }

    @Test func secretOrTruncatedArgumentsAreEmptyJSONForQTasks() async throws {
        try await withStore { store, prefix in
            var secret = EventScript()
            var received = secret.received()
            received.arguments = .omitted
            try await store.record([received])
            var fields = try hash("\(prefix):\(secret.uuid)")
            #expect(fields["args"] == "[]" && fields["kwargs"] == "{}")

            var large = EventScript()
            var big = large.received()
            big.arguments = .bounded(args: [.string(String(repeating: "x", count: 500))], kwargs: [:], maxBytes: 50)
            try await store.record([big])
            fields = try hash("\(prefix):\(large.uuid)")
            #expect(fields["args"] == "[]" && fields["kwargs"] == "{}")
            #expect(try await store.record(for: large.uuid)?.arguments?.truncated == true)
        }
    }

    @Test func heartbeatsAreExpiringStringsOutsideQTasksTaskKeys() async throws {
        try await withStore { store, prefix in
            let now = Date()
            let beat = WorkerHeartbeat(
                workerID: "host.1.abcd", host: "host", pid: 1, queues: ["default"], concurrency: 4, inFlight: 0,
                processed: 0, failed: 0, retried: 0, startedAt: now, sentAt: now, expiresAt: now.addingTimeInterval(15))
            try await store.recordHeartbeat(beat)
            let key = "\(prefix):qtasks_worker:host.1.abcd"
            #expect(try TestRedis.cli(["TYPE", key]).hasPrefix("string"))
            let ttl = Int(try TestRedis.cli(["PTTL", key]).trimmingCharacters(in: .whitespacesAndNewlines)) ?? -3
            #expect(ttl > 10_000 && ttl <= 15_000)
            #expect(try sortedSet("\(prefix):qtasks_index:workers") == ["host.1.abcd"])
            #expect(try await store.liveWorkers().map(\.workerID) == ["host.1.abcd"])

            var offline = beat
            offline.isOnline = false
            try await store.recordHeartbeat(offline)
            #expect(try TestRedis.cli(["EXISTS", key]).hasPrefix("0"))
            #expect(try sortedSet("\(prefix):qtasks_index:workers").isEmpty)
            #expect(try await store.liveWorkers().isEmpty)
        }
    }

    @Test func theBoundDropsManyAtOnce() async throws {
        // More than one chunk of the trim script (500).
        try await withStore(ResultStoreConfiguration(maxRecords: 100)) { store, prefix in
            let start = Date().addingTimeInterval(-600)
            var batch: [TaskEvent] = []
            var uuids: [String] = []
            for index in 0..<1300 {
                var script = EventScript(start: start.addingTimeInterval(Double(index) * 0.01))
                batch += script.success(.int(Int64(index)))
                uuids.append(script.uuid)
            }
            try await store.record(batch)
            #expect(try TestRedis.cli(["ZCARD", "\(prefix):qtasks_index:finished"]).hasPrefix("100"))
            #expect(try TestRedis.cli(["ZCARD", "\(prefix):qtasks_index:updated"]).hasPrefix("100"))
            let listed = try await store.records(matching: TaskRecordQuery(limit: 1000))
            #expect(listed.map(\.uuid) == Array(uuids.suffix(100).reversed()))
            #expect(try await store.record(for: uuids[0]) == nil)
            #expect(try TestRedis.cli(["EXISTS", "\(prefix):\(uuids[0])"]).hasPrefix("0"))
            #expect(try TestRedis.cli(["EXISTS", "\(prefix):\(uuids[1299])"]).hasPrefix("1"))
        }
    }

    @Test func listingSkipsIndexEntriesWhoseHashIsGoneAndPagesThroughChunks() async throws {
        try await withStore { store, prefix in
            let start = Date().addingTimeInterval(-600)
            var batch: [TaskEvent] = []
            var uuids: [String] = []
            for index in 0..<250 {
                var script = EventScript(taskName: index.isMultiple(of: 50) ? "rare" : "common", start: start.addingTimeInterval(Double(index)))
                batch += script.success(.int(Int64(index)))
                uuids.append(script.uuid)
            }
            try await store.record(batch)
            // QTasks' _delete_finished_tasks (or an operator) deletes hashes.
            try TestRedis.cli(["DEL", "\(prefix):\(uuids[249])", "\(prefix):\(uuids[248])"])
            let newest = try await store.records(matching: TaskRecordQuery(limit: 3))
            #expect(newest.map(\.uuid) == [uuids[247], uuids[246], uuids[245]])
            // Few matches spread over more than one chunk.
            let rare = try await store.records(matching: TaskRecordQuery(taskName: "rare", limit: 10))
            #expect(rare.map(\.uuid) == [uuids[200], uuids[150], uuids[100], uuids[50], uuids[0]])
            let paged = try await store.records(matching: TaskRecordQuery(limit: 100, offset: 200))
            #expect(paged.map(\.uuid) == Array(uuids[0..<48].reversed()))
        }
    }

    @Test func uuidsThatCannotBeKeysAreIgnoredWithoutFailingTheBatch() async throws {
        try await withStore { store, prefix in
            var good = EventScript()
            var withColon = EventScript(uuid: "a:b")
            var reserved = EventScript(uuid: "task_process")
            // Someone else's key under the prefix, not a hash.
            var foreign = EventScript(uuid: "not-a-hash")
            try TestRedis.cli(["SET", "\(prefix):not-a-hash", "x"])
            try await store.record(withColon.success() + reserved.success() + foreign.success() + good.success())
            #expect(try await store.record(for: good.uuid)?.status == .success)
            #expect(try await store.record(for: "a:b") == nil)
            #expect(try await store.record(for: "task_process") == nil)
            #expect(try TestRedis.cli(["GET", "\(prefix):not-a-hash"]).hasPrefix("x"))
            let error = await #expect(throws: ResultStoreError.self) { _ = try await store.record(for: "not-a-hash") }
            #expect(error?.code == .corrupt)
            #expect(try await store.records(matching: TaskRecordQuery()).map(\.uuid) == [good.uuid])
        }
    }

    @Test func aCorruptRecordIsReportedOnReadAndReplacedOnWrite() async throws {
        try await withStore { store, prefix in
            var script = EventScript()
            try await store.record([script.received()])
            try TestRedis.cli(["HSET", "\(prefix):\(script.uuid)", "qtasks_record", "{not json"])
            let error = await #expect(throws: ResultStoreError.self) { _ = try await store.record(for: script.uuid) }
            #expect(error?.code == .corrupt)
            #expect(error?.message.contains("\(prefix):\(script.uuid)") == true)
            try await store.record([script.next(.started), script.succeeded(3)])
            let record = try #require(try await store.record(for: script.uuid))
            #expect(record.status == .success && record.result == 3)
        }
    }

    @Test func urlsAndPrefixesAreCheckedAndPasswordsRedacted() async throws {
        let bad = await #expect(throws: ResultStoreError.self) {
            _ = try await RedisResultStore.open(url: "rediss://:pw@127.0.0.1:6379/0", configuration: ResultStoreConfiguration())
        }
        #expect(bad?.code == .invalidURL)
        #expect(bad?.message.contains("pw") == false)
        let prefix = await #expect(throws: ResultStoreError.self) {
            _ = try await RedisResultStore.open(url: TestRedis.url, configuration: ResultStoreConfiguration(keyPrefix: "a:b"))
        }
        #expect(prefix?.code == .invalidURL)

        let port = try TCPPort.free()
        let down = await #expect(throws: ResultStoreError.self) {
            _ = try await ResultStores.open(url: "redis://:s3cret@127.0.0.1:\(port)/0")
        }
        #expect(down?.code == .unavailable)
        #expect(down?.message.contains("redis://:***@127.0.0.1:\(port)/0") == true, "\(String(describing: down))")
        #expect(down?.message.contains("s3cret") == false)
    }
}
