import Foundation

/// The workflow side of a ``MemoryResultStore``: joins, step ends and
/// workflow records, behind the store's lock.
struct MemoryWorkflowState: Sendable {
    struct Join: Sendable {
        var spec: WorkflowJoin
        var counters: JoinLedger.Counters
        var initial: [Int]
        var outcomes: [WorkflowMemberResult<JSONValue>?]
        var answers: [JoinLedger.Answer?]
    }

    enum Step: Sendable {
        case running(String)
        case finished(JSONValue)
    }

    var workflows: [String: WorkflowRecord] = [:]
    var joins: [String: Join] = [:]
    var steps: [String: Step] = [:]

    mutating func recordWorkflow(_ record: WorkflowRecord) {
        if workflows[record.id] == nil { workflows[record.id] = record }
    }

    mutating func finishWorkflow(_ id: String, status: TaskStatus, result: JSONValue?, error: String?, now: Date) {
        guard var record = workflows[id] else { return }
        // A success after a failure is a resumed workflow; nothing
        // overwrites a success.
        guard record.status != .success else { return }
        guard !(record.status.isFinal && status != .success) else { return }
        record.status = status
        record.result = result
        record.error = error
        record.updatedAt = now
        workflows[id] = record
    }

    mutating func openJoin(_ spec: WorkflowJoin) -> [Int] {
        if let join = joins[spec.id] { return join.initial }
        let (counters, initial) = JoinLedger.open(total: spec.members.count, window: spec.window, policy: spec.policy)
        joins[spec.id] = Join(
            spec: spec, counters: counters, initial: initial,
            outcomes: Array(repeating: nil, count: spec.members.count),
            answers: Array(repeating: nil, count: spec.members.count))
        return initial
    }

    mutating func settle(_ membership: JoinMembership, outcome: WorkflowMemberResult<JSONValue>) throws -> JoinSettlement {
        guard var join = joins[membership.id] else {
            throw ResultStoreError(.corrupt, "no join '\(membership.id)' in the store (expired?)")
        }
        guard join.outcomes.indices.contains(membership.index) else {
            throw ResultStoreError(.corrupt, "join '\(membership.id)' has no member \(membership.index)")
        }
        let (answer, isRepeat) = JoinLedger.settle(
            &join.counters, previous: join.outcomes[membership.index], previousAnswer: join.answers[membership.index],
            succeeded: outcome.succeeded)
        if !isRepeat {
            join.outcomes[membership.index] = outcome
            join.answers[membership.index] = answer
        }
        joins[membership.id] = join
        var settlement = JoinSettlement(join: join.spec)
        settlement.start = answer.start.map { JoinStart(index: $0, step: join.spec.members[$0]) }
        settlement.failedWorkflow = answer.failedWorkflow
        settlement.isRepeat = isRepeat
        if answer.completes {
            settlement.completion = join.outcomes.map { $0 ?? WorkflowMemberResult(status: .cancel, error: "no outcome") }
        }
        return settlement
    }

    mutating func beginStep(_ uuid: String, join: JoinMembership?, runner: String, takingOver: Bool) -> StepStart {
        switch steps[uuid] {
        case .finished(let value)?: return .finished(value)
        case .running(let owner)? where owner == runner || !takingOver: return .running
        default: break
        }
        if let join, joins[join.id]?.counters.halted == true, !takingOver { return .halted }
        steps[uuid] = .running(runner)
        return .run
    }

    mutating func finishStep(_ uuid: String, returning: JSONValue) {
        steps[uuid] = .finished(returning)
    }

    mutating func releaseStep(_ uuid: String) {
        if case .running = steps[uuid] { steps[uuid] = nil }
    }

    func progress(_ id: String) -> JoinProgress? {
        guard let join = joins[id] else { return nil }
        let counters = join.counters
        return JoinProgress(
            total: counters.total, started: counters.started, settled: counters.settled, failed: counters.failed,
            halted: counters.halted, completed: counters.completed, members: join.outcomes)
    }
}

extension MemoryResultStore: WorkflowStore {
    public func recordWorkflow(_ record: WorkflowRecord) async throws {
        try withWorkflows { $0.recordWorkflow(record) }
    }

    public func workflowRecord(for id: String) async throws -> WorkflowRecord? {
        try withWorkflows { $0.workflows[id] }
    }

    public func workflowRecords(limit: Int, offset: Int) async throws -> [WorkflowRecord] {
        try withWorkflows { state in
            let sorted = state.workflows.values.sorted { ($0.updatedAt, $0.id) > ($1.updatedAt, $1.id) }
            return Array(sorted.dropFirst(max(0, offset)).prefix(max(0, limit)))
        }
    }

    public func finishWorkflow(_ id: String, status: TaskStatus, result: JSONValue?, error: String?) async throws {
        try withWorkflows { $0.finishWorkflow(id, status: status, result: result, error: error, now: Date()) }
    }

    public func openJoin(_ join: WorkflowJoin) async throws -> [Int] {
        try withWorkflows { $0.openJoin(join) }
    }

    public func settleMember(_ membership: JoinMembership, outcome: WorkflowMemberResult<JSONValue>) async throws -> JoinSettlement {
        try withWorkflows { try $0.settle(membership, outcome: outcome) }
    }

    public func beginStep(_ uuid: String, join: JoinMembership?, runner: String, takingOver: Bool) async throws -> StepStart {
        try withWorkflows { $0.beginStep(uuid, join: join, runner: runner, takingOver: takingOver) }
    }

    public func finishStep(_ uuid: String, returning: JSONValue) async throws {
        try withWorkflows { $0.finishStep(uuid, returning: returning) }
    }

    public func releaseStep(_ uuid: String) async throws {
        try withWorkflows { $0.releaseStep(uuid) }
    }

    public func joinProgress(_ id: String) async throws -> JoinProgress? {
        try withWorkflows { $0.progress(id) }
    }
}
