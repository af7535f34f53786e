import Foundation
import GRDB
import QTasks

/// Workflows in SQLite: each call one `BEGIN IMMEDIATE` transaction, so a
/// join's read-modify-write is atomic across processes on the file.
/// Workflow rows expire ``ResultStoreConfiguration/timeToLive`` after
/// their last change, as records do.
extension SQLiteResultStore: WorkflowStore {
    public func recordWorkflow(_ record: WorkflowRecord) async throws {
        let text = try Self.json(record)
        let expiry = expiry()
        try await write("record workflow \(record.id) in") { db in
            let now = Date().timeIntervalSince1970
            // Expired workflow rows go when a new workflow starts: no
            // background sweeper, and at most one sweep per workflow.
            try db.execute(sql: "DELETE FROM qtasks_workflows WHERE expires_at <= ?", arguments: [now])
            try db.execute(
                sql: "DELETE FROM qtasks_join_members WHERE join_id IN (SELECT id FROM qtasks_joins WHERE expires_at <= ?)",
                arguments: [now])
            try db.execute(sql: "DELETE FROM qtasks_joins WHERE expires_at <= ?", arguments: [now])
            try db.execute(sql: "DELETE FROM qtasks_steps WHERE expires_at <= ?", arguments: [now])
            try db.execute(
                sql: "INSERT INTO qtasks_workflows (id, status, updated_at, expires_at, record) VALUES (?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING",
                arguments: [record.id, record.status.rawValue, record.updatedAt.timeIntervalSince1970, expiry, text])
        }
    }

    public func workflowRecord(for id: String) async throws -> WorkflowRecord? {
        let path = self.path
        return try await read("read workflow \(id) from") { db in
            guard let text = try String.fetchOne(
                db, sql: "SELECT record FROM qtasks_workflows WHERE id = ? AND expires_at > ?",
                arguments: [id, Date().timeIntervalSince1970])
            else { return nil }
            return try Self.decode(WorkflowRecord.self, text, what: "workflow \(id)", path: path)
        }
    }

    public func workflowRecords(limit: Int, offset: Int) async throws -> [WorkflowRecord] {
        guard limit > 0 else { return [] }
        let path = self.path
        return try await read("list workflows in") { db in
            let rows = try Row.fetchAll(
                db,
                sql: "SELECT id, record FROM qtasks_workflows WHERE expires_at > ? ORDER BY updated_at DESC, id DESC LIMIT ? OFFSET ?",
                arguments: [Date().timeIntervalSince1970, limit, max(0, offset)])
            return try rows.map { row in
                try Self.decode(WorkflowRecord.self, row["record"], what: "workflow \(row["id"] as String? ?? "?")", path: path)
            }
        }
    }

    public func finishWorkflow(_ id: String, status: TaskStatus, result: JSONValue?, error: String?) async throws {
        let path = self.path
        let expiry = expiry()
        try await write("finish workflow \(id) in") { db in
            guard let text = try String.fetchOne(db, sql: "SELECT record FROM qtasks_workflows WHERE id = ?", arguments: [id]) else {
                return
            }
            var record = try Self.decode(WorkflowRecord.self, text, what: "workflow \(id)", path: path)
            // Nothing overwrites a success; a success after a failure is a
            // workflow resumed by a replayed step.
            guard record.status != .success, !(record.status.isFinal && status != .success) else { return }
            record.status = status
            record.result = result
            record.error = error
            record.updatedAt = Date()
            try db.execute(
                sql: "UPDATE qtasks_workflows SET status = ?, updated_at = ?, expires_at = ?, record = ? WHERE id = ?",
                arguments: [status.rawValue, record.updatedAt.timeIntervalSince1970, expiry, try Self.json(record), id])
        }
    }

    public func openJoin(_ join: WorkflowJoin) async throws -> [Int] {
        let path = self.path
        var head = join
        head.members = []
        let headText = try Self.json(head)
        let steps = try join.members.map { try Self.json($0) }
        let expiry = expiry()
        return try await write("open join \(join.id) in") { db in
            if let initial = try String.fetchOne(db, sql: "SELECT initial FROM qtasks_joins WHERE id = ?", arguments: [join.id]) {
                return try Self.decode([Int].self, initial, what: "join \(join.id)", path: path)
            }
            let (counters, initial) = JoinLedger.open(total: join.members.count, window: join.window, policy: join.policy)
            try db.execute(
                sql: "INSERT INTO qtasks_joins (id, expires_at, head, counters, initial) VALUES (?, ?, ?, ?, ?)",
                arguments: [join.id, expiry, headText, try Self.json(counters), try Self.json(initial)])
            let insert = try db.cachedStatement(sql: "INSERT INTO qtasks_join_members (join_id, idx, step) VALUES (?, ?, ?)")
            for (index, step) in steps.enumerated() {
                try insert.execute(arguments: [join.id, index, step])
            }
            return initial
        }
    }

    public func settleMember(_ membership: JoinMembership, outcome: WorkflowMemberResult<JSONValue>) async throws -> JoinSettlement {
        let path = self.path
        let outcomeText = try Self.json(outcome)
        let expiry = expiry()
        return try await write("settle member \(membership.index) of join \(membership.id) in") { db in
            let what = "join \(membership.id)"
            guard let row = try Row.fetchOne(db, sql: "SELECT head, counters FROM qtasks_joins WHERE id = ?", arguments: [membership.id]) else {
                throw ResultStoreError(.corrupt, "no join '\(membership.id)' in \(path) (expired?)")
            }
            let head = try Self.decode(WorkflowJoin.self, row["head"], what: what, path: path)
            var counters = try Self.decode(JoinLedger.Counters.self, row["counters"], what: what, path: path)
            guard let member = try Row.fetchOne(
                db, sql: "SELECT outcome, answer FROM qtasks_join_members WHERE join_id = ? AND idx = ?",
                arguments: [membership.id, membership.index])
            else {
                throw ResultStoreError(.corrupt, "join '\(membership.id)' in \(path) has no member \(membership.index)")
            }
            let previous = try (member["outcome"] as String?).map { try Self.decode(WorkflowMemberResult<JSONValue>.self, $0, what: what, path: path) }
            let previousAnswer = try (member["answer"] as String?).map { try Self.decode(JoinLedger.Answer.self, $0, what: what, path: path) }
            let (answer, isRepeat) = JoinLedger.settle(&counters, previous: previous, previousAnswer: previousAnswer, succeeded: outcome.succeeded)
            if !isRepeat {
                try db.execute(
                    sql: "UPDATE qtasks_join_members SET outcome = ?, answer = ? WHERE join_id = ? AND idx = ?",
                    arguments: [outcomeText, try Self.json(answer), membership.id, membership.index])
                try db.execute(
                    sql: "UPDATE qtasks_joins SET counters = ?, expires_at = ? WHERE id = ?",
                    arguments: [try Self.json(counters), expiry, membership.id])
            }
            var settlement = JoinSettlement(join: head)
            settlement.isRepeat = isRepeat
            settlement.failedWorkflow = answer.failedWorkflow
            let step = try db.cachedStatement(sql: "SELECT step FROM qtasks_join_members WHERE join_id = ? AND idx = ?")
            for index in answer.start {
                guard let text = try String.fetchOne(step, arguments: [membership.id, index]) else {
                    throw ResultStoreError(.corrupt, "join '\(membership.id)' in \(path) has no member \(index)")
                }
                settlement.start.append(JoinStart(index: index, step: try Self.decode(WorkflowStep.self, text, what: what, path: path)))
            }
            if answer.completes {
                let rows = try Row.fetchAll(
                    db, sql: "SELECT outcome FROM qtasks_join_members WHERE join_id = ? ORDER BY idx", arguments: [membership.id])
                settlement.completion = try rows.map { row in
                    guard let text = row["outcome"] as String? else { return WorkflowMemberResult(status: .cancel, error: "no outcome") }
                    return try Self.decode(WorkflowMemberResult<JSONValue>.self, text, what: what, path: path)
                }
            }
            return settlement
        }
    }

    public func beginStep(_ uuid: String, join: JoinMembership?, runner: String, takingOver: Bool) async throws -> StepStart {
        let path = self.path
        let expiry = expiry()
        return try await write("begin step \(uuid) in") { db in
            if let row = try Row.fetchOne(db, sql: "SELECT result, runner FROM qtasks_steps WHERE uuid = ?", arguments: [uuid]) {
                if let text = row["result"] as String? {
                    return .finished(try Self.decode(JSONValue.self, text, what: "step \(uuid)", path: path))
                }
                if !takingOver || (row["runner"] as String?) == runner { return .running }
            }
            if let join, !takingOver,
               let text = try String.fetchOne(db, sql: "SELECT counters FROM qtasks_joins WHERE id = ?", arguments: [join.id]),
               try Self.decode(JoinLedger.Counters.self, text, what: "join \(join.id)", path: path).halted {
                return .halted
            }
            try db.execute(
                sql: "INSERT INTO qtasks_steps (uuid, result, runner, expires_at) VALUES (?, NULL, ?, ?) ON CONFLICT (uuid) DO UPDATE SET runner = excluded.runner, expires_at = excluded.expires_at",
                arguments: [uuid, runner, expiry])
            return .run
        }
    }

    public func finishStep(_ uuid: String, returning: JSONValue) async throws {
        let text = try Self.json(returning)
        let expiry = expiry()
        try await write("finish step \(uuid) in") { db in
            try db.execute(
                sql: "INSERT INTO qtasks_steps (uuid, result, expires_at) VALUES (?, ?, ?) ON CONFLICT (uuid) DO UPDATE SET result = excluded.result, expires_at = excluded.expires_at",
                arguments: [uuid, text, expiry])
        }
    }

    public func releaseStep(_ uuid: String) async throws {
        try await write("release step \(uuid) in") { db in
            try db.execute(sql: "DELETE FROM qtasks_steps WHERE uuid = ? AND result IS NULL", arguments: [uuid])
        }
    }

    public func joinProgress(_ id: String) async throws -> JoinProgress? {
        let path = self.path
        return try await read("read join \(id) from") { db in
            guard let text = try String.fetchOne(db, sql: "SELECT counters FROM qtasks_joins WHERE id = ?", arguments: [id]) else {
                return nil
            }
            let counters = try Self.decode(JoinLedger.Counters.self, text, what: "join \(id)", path: path)
            let rows = try Row.fetchAll(db, sql: "SELECT outcome FROM qtasks_join_members WHERE join_id = ? ORDER BY idx", arguments: [id])
            let members = try rows.map { row in
                try (row["outcome"] as String?).map { try Self.decode(WorkflowMemberResult<JSONValue>.self, $0, what: "join \(id)", path: path) }
            }
            return JoinProgress(
                total: counters.total, started: counters.started, settled: counters.settled, failed: counters.failed,
                halted: counters.halted, completed: counters.completed, members: members)
        }
    }

    private func expiry() -> Double {
        Date().timeIntervalSince1970 + Double(configuration.timeToLive.components.seconds)
    }

    static func json(_ value: some Encodable) throws -> String {
        try WorkflowJSON.text(of: value)
    }

    static func decode<T: Decodable>(_ type: T.Type, _ text: String, what: String, path: String) throws -> T {
        try WorkflowJSON.decode(type, text, what: "\(what) in \(path)")
    }
}
