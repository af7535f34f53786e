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

    /// Writes one task's record if the hash still holds what the writer
    /// read, with the record's index entries, atomically: a compare-and-set
    /// per record, so that two processes writing the same task (a sender's
    /// `sent` and the worker's `started`, or two deliveries of one task)
    /// never overwrite each other's events.
    ///
    /// KEYS: the record, the updated index, the finished index, the
    /// in-flight set `task_process`. ARGV, in order: `n`, the number of
    /// fields read; their `n` names; per field `1` and its value as read, or
    /// `0` and an empty string when it was absent; the time-to-live (ms);
    /// the index score; the uuid; `1` when finished; the in-flight score
    /// (priority) or empty when not running; the in-flight member or empty;
    /// the count of in-flight members to remove, then those; the count of
    /// hash fields to delete, then those; then the `HSET` pairs. Returns 1
    /// when written, 0 when the hash changed since it was read (nothing
    /// written: read again and apply the events to what is there now).
    static let compareAndSetScript = """
        local n = tonumber(ARGV[1])
        local names = {}
        for i = 1, n do names[i] = ARGV[1 + i] end
        local current = redis.call('HMGET', KEYS[1], unpack(names))
        for i = 1, n do
          local present, expected = ARGV[2 * i + n], ARGV[2 * i + n + 1]
          local value = current[i]
          if value then
            if present ~= '1' or value ~= expected then return 0 end
          elseif present ~= '0' then return 0 end
        end
        local at = 2 + 3 * n
        local ttl, score, uuid, finished = ARGV[at], ARGV[at + 1], ARGV[at + 2], ARGV[at + 3]
        local running, member = ARGV[at + 4], ARGV[at + 5]
        local stale = tonumber(ARGV[at + 6])
        at = at + 7
        if stale > 0 then redis.call('ZREM', KEYS[4], unpack(ARGV, at, at + stale - 1)) end
        at = at + stale
        local removed = tonumber(ARGV[at])
        if removed > 0 then redis.call('HDEL', KEYS[1], unpack(ARGV, at + 1, at + removed)) end
        at = at + removed + 1
        redis.call('HSET', KEYS[1], unpack(ARGV, at, #ARGV))
        redis.call('PEXPIRE', KEYS[1], ttl)
        redis.call('ZADD', KEYS[2], score, uuid)
        if finished == '1' then redis.call('ZADD', KEYS[3], score, uuid) end
        if running ~= '' then redis.call('ZADD', KEYS[4], running, member) end
        return 1
        """

    /// How many times a batch reads again the records another process
    /// changed between its read and its write, before it gives up with
    /// `.unavailable` (each round means another writer's write went through:
    /// only a task written without pause by several processes at once gets
    /// near it).
    static let compareAndSetRounds = 50

    /// One task's write, planned from what was read.
    private struct PlannedWrite {
        var uuid: String
        /// The `HMGET` reply's elements, as read (the script compares them).
        var read: [RedisReply]
        var record: TaskRecord
        var json: String
        var removedFields: [String]
        var staleMembers: [String]
    }

    /// The write path of ``record(_:)``, on the store's queue: one pipelined
    /// read of every task's record, the events applied in Swift, one
    /// pipelined compare-and-set per record (``compareAndSetScript``);
    /// the records another process changed in between are read and written
    /// again, then the batch's index upkeep in one more pipeline.
    func write(uuids: [String], events: [String: [TaskEvent]], session: inout Session) throws {
        let now = Date()
        var pending = uuids
        var round = 0
        while !pending.isEmpty {
            round += 1
            guard round <= Self.compareAndSetRounds else {
                throw ResultStoreError(
                    .unavailable,
                    "cannot record task events in Redis at \(endpoint.redactedURL): the records of \(pending.count) tasks (\(pending.prefix(3).joined(separator: ", "))) kept changing under \(Self.compareAndSetRounds) tries")
            }
            let plans = try plan(pending, events: events, now: now, session: &session)
            guard !plans.isEmpty else { return }
            // The batch's upkeep rides with its first writes: the indexes'
            // time-to-live, their entries past it, the bound on finished
            // records.
            pending = try compareAndSet(plans, upkeep: round == 1 ? upkeep(now: now, finishing: plans.contains { $0.record.isFinished }) : [], session: &session)
        }
    }

    /// The index upkeep of a batch written at `now`; with the trim of the
    /// oldest finished records when it finished tasks.
    private func upkeep(now: Date, finishing: Bool) -> [[String]] {
        let ttl = String(ttlMilliseconds)
        let cutoff = "(" + RedisResultLayout.score(now.addingTimeInterval(-Seconds.double(configuration.timeToLive)))
        var upkeep: [[String]] = [layout.updatedKey, layout.finishedKey, layout.processKey].map { ["PEXPIRE", $0, ttl] }
        upkeep.append(["ZREMRANGEBYSCORE", layout.updatedKey, "-inf", cutoff])
        upkeep.append(["ZREMRANGEBYSCORE", layout.finishedKey, "-inf", cutoff])
        if finishing {
            upkeep.append([
                "EVAL", Self.trimScript, "2", layout.finishedKey, layout.updatedKey,
                String(max(0, configuration.maxRecords)), layout.prefix,
            ])
        }
        return upkeep
    }

    /// Reads the records of `uuids` (one pipelined `HMGET` each: our JSON
    /// record, else the fields a QTasks producer wrote) and applies their
    /// events.
    private func plan(
        _ uuids: [String], events: [String: [TaskEvent]], now: Date, session: inout Session
    ) throws -> [PlannedWrite] {
        let maxEvents = configuration.maxEventsPerRecord
        let fieldsRead = RedisResultLayout.readFields
        var reads = RedisCommandBuffer(reservingCapacity: uuids.count * 256)
        for uuid in uuids {
            reads.begin(argumentCount: 2 + fieldsRead.count)
            reads.argument("HMGET")
            reads.argument(layout.recordKey(uuid))
            for field in fieldsRead { reads.argument(field) }
        }
        let readReplies = try session.pipeline(reads)

        var plans: [PlannedWrite] = []
        plans.reserveCapacity(uuids.count)
        for (uuid, reply) in zip(uuids, readReplies) {
            let key = layout.recordKey(uuid)
            guard case .array(let read) = reply, let values = try? strings(reply, count: fieldsRead.count, to: "HMGET", key: key)
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
            var removed: [String] = []
            if let stored {
                let present = Set(RedisResultLayout.fields(of: record, recordJSON: "").lazy.map(\.0))
                let before = Set(RedisResultLayout.fields(of: stored, recordJSON: "").lazy.map(\.0))
                removed = RedisResultLayout.Field.optional.filter { before.contains($0) && !present.contains($0) }
            }
            // Out of `task_process` unless `process`: its member is removed
            // whatever was read (atomically with the write, so a stale
            // member never outlives the record's end), and an older member
            // (another name or priority) too.
            var stale: [String] = []
            let member = RedisResultLayout.processMember(record)
            if record.status != .process, let member { stale.append(member) }
            if let previous, let old = RedisResultLayout.processMember(previous), old != member { stale.append(old) }
            plans.append(
                PlannedWrite(uuid: uuid, read: read, record: record, json: json, removedFields: removed, staleMembers: stale))
        }
        return plans
    }

    /// Sends one compare-and-set per plan, then the `upkeep` commands, in
    /// one pipeline. Returns the uuids whose hash changed since it was read
    /// (not written).
    private func compareAndSet(_ plans: [PlannedWrite], upkeep: [[String]], session: inout Session) throws -> [String] {
        let fieldsRead = RedisResultLayout.readFields
        let ttl = String(ttlMilliseconds)
        var commands = RedisCommandBuffer(reservingCapacity: plans.count * 3000)
        for plan in plans {
            let record = plan.record
            let fields = RedisResultLayout.fields(of: record, recordJSON: plan.json)
            let member = RedisResultLayout.processMember(record)
            let running = record.status == .process && member != nil
            commands.begin(
                argumentCount: 3 + 4 + 1 + fieldsRead.count * 3 + 7 + plan.staleMembers.count + 1 + plan.removedFields.count
                    + fields.count * 2)
            commands.argument("EVAL")
            commands.argument(Self.compareAndSetScript)
            commands.argument("4")
            commands.argument(layout.recordKey(plan.uuid))
            commands.argument(layout.updatedKey)
            commands.argument(layout.finishedKey)
            commands.argument(layout.processKey)
            commands.argument(String(fieldsRead.count))
            for field in fieldsRead { commands.argument(field) }
            for value in plan.read {
                if case .string(let bytes) = value {
                    commands.argument("1")
                    bytes.withUnsafeBufferPointer { commands.argument(bytes: $0) }
                } else {
                    commands.argument("0")
                    commands.argument("")
                }
            }
            commands.argument(ttl)
            commands.argument(RedisResultLayout.score(record.updatedAt))
            commands.argument(plan.uuid)
            commands.argument(record.isFinished ? "1" : "0")
            commands.argument(running ? String(record.priority) : "")
            commands.argument(running ? member ?? "" : "")
            commands.argument(String(plan.staleMembers.count))
            for stale in plan.staleMembers { commands.argument(stale) }
            commands.argument(String(plan.removedFields.count))
            for field in plan.removedFields { commands.argument(field) }
            for (name, value) in fields {
                commands.argument(name)
                commands.argument(value)
            }
        }
        for command in upkeep { commands.command(command) }
        let replies: [RedisReply]
        do {
            replies = try session.pipeline(commands, writes: true)
        } catch {
            for plan in plans { writtenRecords.remove(plan.uuid) }
            throw error
        }
        var conflicts: [String] = []
        var failure: (any Error)?
        for (plan, reply) in zip(plans, replies) {
            switch reply {
            case .integer(1):
                if plan.record.isFinished {
                    writtenRecords.remove(plan.uuid)
                } else {
                    writtenRecords.insert(plan.record, json: plan.json)
                }
            case .integer(0):
                conflicts.append(plan.uuid)
            default:
                // The key became something else than a hash (WRONGTYPE),
                // or Redis refused the script: report the first, after
                // the others' cache entries are settled.
                writtenRecords.remove(plan.uuid)
                if failure == nil {
                    do {
                        _ = try checked(reply, key: layout.recordKey(plan.uuid))
                        failure = unexpected(reply, to: "EVAL compare-and-set", key: layout.recordKey(plan.uuid))
                    } catch {
                        failure = error
                    }
                }
            }
        }
        for (command, reply) in zip(upkeep, replies.dropFirst(plans.count)) where failure == nil {
            do {
                _ = try checked(reply, key: command[0] == "EVAL" ? layout.finishedKey : command[1])
            } catch {
                failure = error
            }
        }
        if let failure { throw failure }
        return conflicts
    }
}
