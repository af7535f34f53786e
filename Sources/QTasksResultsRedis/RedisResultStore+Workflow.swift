import Foundation
import QTasks
import QTasksStateRedis

/// Workflows in Redis: a join is a hash of counters plus one hash per
/// member attribute (steps, outcomes, states, answers); opening, settling
/// and beginning a step are Lua scripts (atomic on the server, the same
/// arithmetic as ``JoinLedger``), so any number of workers settle members
/// of one join without a lock. Keys expire
/// ``ResultStoreConfiguration/timeToLive`` after their last change.
extension RedisResultStore: WorkflowStore {
    public func recordWorkflow(_ record: WorkflowRecord) async throws {
        let key = layout.workflowKey(record.id)
        let commands = [["SET", key, try Self.json(record), "NX", "PX", String(ttlMilliseconds)]] + indexCommands(record)
        try await perform(doing: "record workflow \(record.id) in") { session in
            for reply in try session.pipeline(commands, writes: true) { _ = try self.checked(reply, key: key) }
        }
    }

    public func workflowRecord(for id: String) async throws -> WorkflowRecord? {
        let key = layout.workflowKey(id)
        let text = try await perform(doing: "read workflow \(id) from") { session in
            try self.strings(.array([try self.checked(try session.pipeline([["GET", key]])[0], key: key)]), count: 1, to: "GET", key: key)[0]
        }
        return try text.map { try decode(WorkflowRecord.self, $0, key: key) }
    }

    public func finishWorkflow(_ id: String, status: TaskStatus, result: JSONValue?, error: String?) async throws {
        guard var record = try await workflowRecord(for: id) else { return }
        // Nothing overwrites a success; a success after a failure is a
        // workflow resumed by a replayed step. (Two workers finishing one
        // workflow at the same moment is a race this read-then-write
        // accepts: the record is for reading, the result went to reply_to.)
        guard record.status != .success, !(record.status.isFinal && status != .success) else { return }
        record.status = status
        record.result = result
        record.error = error
        record.updatedAt = Date()
        let key = layout.workflowKey(id)
        let commands = [["SET", key, try Self.json(record), "PX", String(ttlMilliseconds)]] + indexCommands(record)
        try await perform(doing: "finish workflow \(id) in") { session in
            for reply in try session.pipeline(commands, writes: true) { _ = try self.checked(reply, key: key) }
        }
    }

    public func workflowRecords(limit: Int, offset: Int) async throws -> [WorkflowRecord] {
        guard limit > 0 else { return [] }
        let index = layout.workflowsKey
        let start = max(0, offset)
        let ids = try await perform(doing: "list workflows in") { session in
            let reply = try self.checked(try session.pipeline([["ZREVRANGE", index, String(start), String(start + limit - 1)]])[0], key: index)
            guard case .array(let elements) = reply else { throw self.unexpected(reply, to: "ZREVRANGE", key: index) }
            return try elements.map { element -> String in
                guard case .string(let bytes) = element else { throw self.unexpected(reply, to: "ZREVRANGE", key: index) }
                return String(decoding: bytes, as: UTF8.self)
            }
        }
        var records: [WorkflowRecord] = []
        for id in ids {
            // An expired record leaves its id in the index until trimmed.
            if let record = try await workflowRecord(for: id) { records.append(record) }
        }
        return records
    }

    /// Indexes a workflow by its update time, and drops ids older than the
    /// time-to-live (their records expired).
    private func indexCommands(_ record: WorkflowRecord) -> [[String]] {
        let now = Date()
        let oldest = now.addingTimeInterval(-Double(ttlMilliseconds) / 1000)
        return [
            ["ZADD", layout.workflowsKey, RedisResultLayout.score(record.updatedAt), record.id],
            ["ZREMRANGEBYSCORE", layout.workflowsKey, "-inf", "(" + RedisResultLayout.score(oldest)],
            ["PEXPIRE", layout.workflowsKey, String(ttlMilliseconds)],
        ]
    }

    public func openJoin(_ join: WorkflowJoin) async throws -> [Int] {
        var head = join
        head.members = []
        let (counters, initial) = JoinLedger.open(total: join.members.count, window: join.window, policy: join.policy)
        let key = layout.joinKey(join.id)
        var command = [
            "EVAL", Self.openScript, "2", key, layout.joinMembersKey(join.id),
            String(ttlMilliseconds), try Self.json(head), try Self.json(initial), String(counters.total), String(counters.window),
            String(counters.started), counters.completed ? "1" : "0", counters.failFast ? "1" : "0",
        ]
        for member in join.members { command.append(try Self.json(member)) }
        let batch = command
        let text = try await perform(doing: "open join \(join.id) in") { session in
            try self.strings(.array([try self.checked(try session.pipeline([batch], writes: true)[0], key: key)]), count: 1, to: "EVAL", key: key)[0]
        }
        return try decode([Int].self, text ?? "[]", key: key)
    }

    public func settleMember(_ membership: JoinMembership, outcome: WorkflowMemberResult<JSONValue>) async throws -> JoinSettlement {
        let id = membership.id
        let key = layout.joinKey(id)
        let (membersKey, outcomesKey) = (layout.joinMembersKey(id), layout.joinOutcomesKey(id))
        let command = [
            "EVAL", Self.settleScript, "5", key, outcomesKey, layout.joinStatesKey(id), layout.joinAnswersKey(id), membersKey,
            String(membership.index), try Self.json(outcome), outcome.succeeded ? "1" : "0", String(ttlMilliseconds),
        ]
        return try await perform(doing: "settle member \(membership.index) of join \(id) in") { session in
            let reply = try self.checked(try session.pipeline([command], writes: true)[0], key: key)
            guard case .array(let parts) = reply, parts.count == 3, case .integer(let code) = parts[0] else {
                throw self.unexpected(reply, to: "EVAL settle", key: key)
            }
            guard code >= 0, case .string(let answerBytes) = parts[1], case .string(let headBytes) = parts[2] else {
                throw ResultStoreError(.corrupt, "no join '\(id)' in Redis at \(self.endpoint.redactedURL) (expired?)")
            }
            let answer = try self.decode(JoinLedger.Answer.self, String(decoding: answerBytes, as: UTF8.self), key: key)
            var settlement = JoinSettlement(join: try self.decode(WorkflowJoin.self, String(decoding: headBytes, as: UTF8.self), key: key))
            settlement.isRepeat = code == 1
            settlement.failedWorkflow = answer.failedWorkflow
            var reads: [[String]] = []
            if !answer.start.isEmpty { reads.append(["HMGET", membersKey] + answer.start.map(String.init)) }
            if answer.completes { reads.append(["HGETALL", outcomesKey]) }
            guard !reads.isEmpty else { return settlement }
            let replies = try session.pipeline(reads)
            if !answer.start.isEmpty {
                let steps = try self.strings(try self.checked(replies[0], key: membersKey), count: answer.start.count, to: "HMGET", key: membersKey)
                for (index, text) in zip(answer.start, steps) {
                    guard let text else { throw ResultStoreError(.corrupt, "join '\(id)' has no member \(index)") }
                    settlement.start.append(JoinStart(index: index, step: try self.decode(WorkflowStep.self, text, key: membersKey)))
                }
            }
            if answer.completes {
                let outcomes = try self.hash(try self.checked(replies[replies.count - 1], key: outcomesKey), key: outcomesKey)
                let total = try self.total(of: id, session: &session)
                settlement.completion = try (0..<total).map { index in
                    guard let text = outcomes[String(index)] else { return WorkflowMemberResult(status: .cancel, error: "no outcome") }
                    return try self.decode(WorkflowMemberResult<JSONValue>.self, text, key: outcomesKey)
                }
            }
            return settlement
        }
    }

    public func beginStep(_ uuid: String, join: JoinMembership?, runner: String, takingOver: Bool) async throws -> StepStart {
        let key = layout.stepKey(uuid)
        let command = [
            "EVAL", Self.beginScript, "2", key, join.map { layout.joinKey($0.id) } ?? key,
            takingOver ? "1" : "0", String(ttlMilliseconds), join == nil ? "0" : "1", runner,
        ]
        let reply = try await perform(doing: "begin step \(uuid) in") { session in
            try self.checked(try session.pipeline([command], writes: true)[0], key: key)
        }
        guard case .string(let bytes) = reply, let first = bytes.first else { throw unexpected(reply, to: "EVAL begin", key: key) }
        switch first {
        case UInt8(ascii: "F"): return .finished(try decode(JSONValue.self, String(decoding: bytes.dropFirst(), as: UTF8.self), key: key))
        case UInt8(ascii: "R"): return .running
        case UInt8(ascii: "H"): return .halted
        default: return .run
        }
    }

    public func finishStep(_ uuid: String, returning: JSONValue) async throws {
        let key = layout.stepKey(uuid)
        let command = ["SET", key, "F" + (try Self.json(returning)), "PX", String(ttlMilliseconds)]
        try await perform(doing: "finish step \(uuid) in") { session in
            _ = try self.checked(try session.pipeline([command], writes: true)[0], key: key)
        }
    }

    public func releaseStep(_ uuid: String) async throws {
        let key = layout.stepKey(uuid)
        // Only a running mark ("R<runner>"), never a finished step's result.
        let command = ["EVAL", "local v = redis.call('GET', KEYS[1]) if v and string.sub(v, 1, 1) == 'R' then return redis.call('DEL', KEYS[1]) end return 0", "1", key]
        try await perform(doing: "release step \(uuid) in") { session in
            _ = try self.checked(try session.pipeline([command], writes: true)[0], key: key)
        }
    }

    public func joinProgress(_ id: String) async throws -> JoinProgress? {
        let key = layout.joinKey(id)
        let outcomesKey = layout.joinOutcomesKey(id)
        return try await perform(doing: "read join \(id) from") { session in
            let replies = try session.pipeline([
                ["HMGET", key, "total", "started", "settled", "failed", "halted", "completed"], ["HGETALL", outcomesKey],
            ])
            let values = try self.strings(try self.checked(replies[0], key: key), count: 6, to: "HMGET", key: key)
            guard let total = values[0].flatMap(Int.init) else { return nil }
            let outcomes = try self.hash(try self.checked(replies[1], key: outcomesKey), key: outcomesKey)
            return JoinProgress(
                total: total, started: values[1].flatMap(Int.init) ?? 0, settled: values[2].flatMap(Int.init) ?? 0,
                failed: values[3].flatMap(Int.init) ?? 0, halted: values[4] == "1", completed: values[5] == "1",
                members: try (0..<total).map { index in
                    try outcomes[String(index)].map { try self.decode(WorkflowMemberResult<JSONValue>.self, $0, key: outcomesKey) }
                })
        }
    }

    // MARK: - Helpers

    private func total(of id: String, session: inout Session) throws -> Int {
        let key = layout.joinKey(id)
        let value = try strings(.array([try checked(try session.pipeline([["HGET", key, "total"]])[0], key: key)]), count: 1, to: "HGET", key: key)[0]
        return value.flatMap(Int.init) ?? 0
    }

    private func hash(_ reply: RedisReply, key: String) throws -> [String: String] {
        guard case .array(let elements) = reply, elements.count % 2 == 0 else { throw unexpected(reply, to: "HGETALL", key: key) }
        var values: [String: String] = [:]
        var index = 0
        while index < elements.count {
            guard case .string(let field) = elements[index], case .string(let value) = elements[index + 1] else {
                throw unexpected(reply, to: "HGETALL", key: key)
            }
            values[String(decoding: field, as: UTF8.self)] = String(decoding: value, as: UTF8.self)
            index += 2
        }
        return values
    }

    static func json(_ value: some Encodable) throws -> String {
        try WorkflowJSON.text(of: value)
    }

    func decode<T: Decodable>(_ type: T.Type, _ text: String, key: String) throws -> T {
        try WorkflowJSON.decode(type, text, what: "\(key) in Redis at \(endpoint.redactedURL)")
    }

    // MARK: - Scripts

    /// KEYS: join, members. ARGV: ttl ms, head, initial, total, window,
    /// started, completed, failfast, then one step per member. Returns the
    /// `initial` of the join (the existing one when it was open already).
    static let openScript = """
        if redis.call('EXISTS', KEYS[1]) == 1 then return redis.call('HGET', KEYS[1], 'initial') end
        redis.call('HSET', KEYS[1], 'head', ARGV[2], 'initial', ARGV[3], 'total', ARGV[4], 'window', ARGV[5],
            'started', ARGV[6], 'settled', 0, 'failed', 0, 'halted', 0, 'completed', ARGV[7], 'failfast', ARGV[8])
        for i = 9, #ARGV do redis.call('HSET', KEYS[2], i - 9, ARGV[i]) end
        redis.call('PEXPIRE', KEYS[1], ARGV[1])
        if #ARGV >= 9 then redis.call('PEXPIRE', KEYS[2], ARGV[1]) end
        return ARGV[3]
        """

    /// JoinLedger.settle in Lua. KEYS: join, outcomes, states, answers,
    /// members. ARGV: index, outcome JSON, "1" when it succeeded, ttl ms.
    /// Returns {-1} for an unknown join, else {0 or 1 (a repeat), the
    /// answer JSON, the head JSON}.
    static let settleScript = """
        if redis.call('EXISTS', KEYS[1]) == 0 then return {-1, '', ''} end
        local idx, ok = ARGV[1], ARGV[3] == '1'
        local head = redis.call('HGET', KEYS[1], 'head')
        local prev = redis.call('HGET', KEYS[3], idx)
        local prevAnswer = redis.call('HGET', KEYS[4], idx)
        local c = redis.call('HMGET', KEYS[1], 'total', 'window', 'started', 'settled', 'failed', 'halted', 'completed', 'failfast')
        local total, window, started, settled, failed = tonumber(c[1]), tonumber(c[2]), tonumber(c[3]), tonumber(c[4]), tonumber(c[5])
        local halted, completed, failfast = c[6] == '1', c[7] == '1', c[8] == '1'
        if prev and prevAnswer then
            if prev == 'ok' or not ok then return {1, prevAnswer, head} end
            failed = failed - 1
        else
            settled = settled + 1
            if not ok then failed = failed + 1 end
        end
        local starts = {}
        local completes, failedWorkflow = false, false
        if failfast and failed > 0 and not halted and not completed then
            halted = true
            failedWorkflow = true
        end
        if halted and failed == 0 then halted = false end
        if not halted then
            while started < total and started - settled < window do
                table.insert(starts, started)
                started = started + 1
            end
            if settled == total and not completed and not (failfast and failed > 0) then
                completed = true
                completes = true
            end
        end
        local answer = '{"start":[' .. table.concat(starts, ',') .. '],"completes":' .. tostring(completes) ..
            ',"failedWorkflow":' .. tostring(failedWorkflow) .. '}'
        redis.call('HSET', KEYS[1], 'started', started, 'settled', settled, 'failed', failed,
            'halted', halted and '1' or '0', 'completed', completed and '1' or '0')
        redis.call('HSET', KEYS[2], idx, ARGV[2])
        redis.call('HSET', KEYS[3], idx, ok and 'ok' or 'failed')
        redis.call('HSET', KEYS[4], idx, answer)
        for i = 1, 5 do redis.call('PEXPIRE', KEYS[i], ARGV[4]) end
        return {0, answer, head}
        """

    /// KEYS: step, join (the step key again when none). ARGV: taking over
    /// ("1"), ttl ms, has a join ("1"), runner. The step's value is
    /// "F<result JSON>" when finished, "R<runner>" while running. Returns
    /// "F<result JSON>" (finished), "R" (running: wait), "H" (its join
    /// halted) or "G" (go).
    static let beginScript = """
        local v = redis.call('GET', KEYS[1])
        if v and string.sub(v, 1, 1) == 'F' then return v end
        if v and (ARGV[1] ~= '1' or v == 'R' .. ARGV[4]) then return 'R' end
        if ARGV[1] ~= '1' and ARGV[3] == '1' and redis.call('HGET', KEYS[2], 'halted') == '1' then return 'H' end
        redis.call('SET', KEYS[1], 'R' .. ARGV[4], 'PX', ARGV[2])
        return 'G'
        """
}
