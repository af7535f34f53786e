import Foundation
import QTasks
import QTasksStateRedis

extension RedisResultStore {
    /// Drops the oldest finished records past the bound: their hashes and
    /// their entries in both indexes. KEYS: the finished index, the updated
    /// index; ARGV: the bound, the key prefix. Returns how many it dropped.
    static let trimScript = """
        local excess = redis.call('ZCARD', KEYS[1]) - tonumber(ARGV[1])
        if excess <= 0 then return 0 end
        local oldest = redis.call('ZRANGE', KEYS[1], 0, excess - 1)
        for first = 1, #oldest, 500 do
          local uuids, keys = {}, {}
          for i = first, math.min(first + 499, #oldest) do
            uuids[#uuids + 1] = oldest[i]
            keys[#keys + 1] = ARGV[2] .. ':' .. oldest[i]
          end
          redis.call('DEL', unpack(keys))
          redis.call('ZREM', KEYS[1], unpack(uuids))
          redis.call('ZREM', KEYS[2], unpack(uuids))
        end
        return excess
        """

    /// The write path of ``record(_:)``, on the store's queue: one pipelined
    /// read of every task's record, the events applied in Swift, one
    /// pipelined write.
    func write(uuids: [String], events: [String: [TaskEvent]], session: inout Session) throws {
        let now = Date()
        let maxEvents = configuration.maxEventsPerRecord
        let fieldsRead = RedisResultLayout.readFields

        // 1. Read: our JSON record, else the fields a QTasks producer wrote.
        var reads = RedisCommandBuffer(reservingCapacity: uuids.count * 256)
        for uuid in uuids {
            reads.begin(argumentCount: 2 + fieldsRead.count)
            reads.argument("HMGET")
            reads.argument(layout.recordKey(uuid))
            for field in fieldsRead { reads.argument(field) }
        }
        let readReplies = try session.pipeline(reads)

        // 2. Apply the events.
        // The commands, and the key each is about (for error messages).
        var commands = RedisCommandBuffer(reservingCapacity: uuids.count * 1500)
        var commandKeys: [String] = []
        commandKeys.reserveCapacity(uuids.count * 2 + 10)
        func add(_ command: [String]) {
            commands.command(command)
            commandKeys.append(command[0] == "EVAL" ? layout.finishedKey : command[1])
        }
        var updated: [String] = ["ZADD", layout.updatedKey]
        var finished: [String] = ["ZADD", layout.finishedKey]
        var running: [String] = ["ZADD", layout.processKey]
        var notRunning: [String] = ["ZREM", layout.processKey]
        let ttl = String(ttlMilliseconds)
        // For the cache, once written: the unfinished records and their text.
        var written: [(uuid: String, entry: (json: String, record: TaskRecord)?)] = []
        written.reserveCapacity(uuids.count)
        for (uuid, reply) in zip(uuids, readReplies) {
            let key = layout.recordKey(uuid)
            guard case .array = reply, let values = try? strings(reply, count: fieldsRead.count, to: "HMGET", key: key)
            else {
                // WRONGTYPE: the key is not a hash of ours (someone else's
                // key under the prefix). Leave it alone rather than fail
                // the batch for good.
                if case .error(let text) = reply, !text.hasPrefix("WRONGTYPE") { _ = try checked(reply, key: key) }
                continue
            }
            // Our record as last written (it may have expired, or not
            // parse: then what a QTasks producer wrote, if anything).
            let stored = values[0].flatMap { json in
                writtenRecords.record(for: uuid, json: json) ?? (try? TaskRecordJSON.decode(json.utf8))
            }
            var previous = stored ?? RedisResultLayout.foreignRecord(uuid: uuid, values: values)
            if let record = previous, !isLive(record, now: now) { previous = nil }

            let taskEvents = events[uuid] ?? []
            var record: TaskRecord
            var rest = taskEvents[...]
            if let previous {
                record = previous
            } else {
                guard let first = rest.popFirst() else { continue }
                record = TaskRecord(first: first, maxEvents: maxEvents)
            }
            for event in rest { record.apply(event, maxEvents: maxEvents) }

            let json = TaskRecordJSON.encode(record)
            if record.isFinished {
                written.append((uuid, nil))
            } else {
                written.append((uuid, (json, record)))
            }
            let fields = RedisResultLayout.fields(of: record, recordJSON: json)
            if let stored {
                let present = Set(fields.lazy.map(\.0))
                let before = Set(RedisResultLayout.fields(of: stored, recordJSON: "").lazy.map(\.0))
                let removed = RedisResultLayout.Field.optional.filter { before.contains($0) && !present.contains($0) }
                if !removed.isEmpty { add(["HDEL", key] + removed) }
            }
            commands.begin(argumentCount: 2 + fields.count * 2)
            commands.argument("HSET")
            commands.argument(key)
            for (name, value) in fields {
                commands.argument(name)
                commands.argument(value)
            }
            commandKeys.append(key)
            add(["PEXPIRE", key, ttl])

            let score = RedisResultLayout.score(record.updatedAt)
            updated += [score, uuid]
            if record.isFinished { finished += [score, uuid] }
            // In `task_process` while `process`. Out otherwise: removed when
            // it may be there (it was running, or this batch started it and
            // another worker's write of the same task may have added it).
            let member = RedisResultLayout.processMember(record)
            if record.status == .process {
                if let member { running += [String(record.priority), member] }
            } else if let member, previous?.status == .process || taskEvents.contains(where: { $0.kind == .started }) {
                notRunning.append(member)
            }
            if let previous, let old = RedisResultLayout.processMember(previous), old != member {
                notRunning.append(old)
            }
        }
        guard commands.count > 0 else { return }

        // 3. Write: the records, the indexes, the in-flight set, the trims.
        let cutoff = "(" + RedisResultLayout.score(now.addingTimeInterval(-Seconds.double(configuration.timeToLive)))
        add(updated)
        if finished.count > 2 { add(finished) }
        if running.count > 2 { add(running) }
        if notRunning.count > 2 { add(notRunning) }
        for index in [layout.updatedKey, layout.finishedKey, layout.processKey] {
            add(["PEXPIRE", index, ttl])
        }
        add(["ZREMRANGEBYSCORE", layout.updatedKey, "-inf", cutoff])
        add(["ZREMRANGEBYSCORE", layout.finishedKey, "-inf", cutoff])
        if finished.count > 2 {
            add([
                "EVAL", Self.trimScript, "2", layout.finishedKey, layout.updatedKey,
                String(max(0, configuration.maxRecords)), layout.prefix,
            ])
        }
        let replies: [RedisReply]
        do {
            replies = try session.pipeline(commands, writes: true)
        } catch {
            for (uuid, _) in written { writtenRecords.remove(uuid) }
            throw error
        }
        for (uuid, entry) in written {
            if let entry { writtenRecords.insert(entry.record, json: entry.json) } else { writtenRecords.remove(uuid) }
        }
        for (key, reply) in zip(commandKeys, replies) {
            _ = try checked(reply, key: key)
        }
    }
}
