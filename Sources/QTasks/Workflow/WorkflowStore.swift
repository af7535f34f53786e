import Foundation

/// Where workflows keep what must outlive a message: each group's join
/// (an atomic, idempotent counter of its members), each step's end (so a
/// step delivered twice runs once), and the workflow's record.
///
/// The result stores implement it: ``MemoryResultStore``, and the SQLite
/// (one transaction per call) and Redis (one Lua script per call) stores.
/// Every call is atomic; every call may be repeated with the same
/// arguments (a worker that died before acknowledging its delivery makes
/// the same calls again) and then returns what the first call returned.
public protocol WorkflowStore: Sendable {
    /// Records a workflow as started; a second call for the same id changes
    /// nothing.
    ///
    /// - Throws: ``ResultStoreError``.
    func recordWorkflow(_ record: WorkflowRecord) async throws

    /// The workflow's record, nil when unknown or expired.
    ///
    /// - Throws: ``ResultStoreError``.
    func workflowRecord(for id: String) async throws -> WorkflowRecord?

    /// The most recently updated workflows first (started, or ended),
    /// unexpired; `offset` skips that many.
    ///
    /// - Throws: ``ResultStoreError``.
    func workflowRecords(limit: Int, offset: Int) async throws -> [WorkflowRecord]

    /// Records the workflow's end (the status, result or error); the first
    /// end of a `success` kind wins over an earlier failure (a replayed
    /// member resumed the workflow).
    ///
    /// - Throws: ``ResultStoreError``.
    func finishWorkflow(_ id: String, status: TaskStatus, result: JSONValue?, error: String?) async throws

    /// Opens a group's join and returns the members to start now (all of
    /// them, or the first `window`). When the join is open already, returns
    /// what the first call returned.
    ///
    /// - Throws: ``ResultStoreError``.
    func openJoin(_ join: WorkflowJoin) async throws -> [Int]

    /// Records how a member ended and says what follows from it, in one
    /// atomic step. A member counts once however often its end is
    /// recorded; recording it again returns the first call's
    /// ``JoinSettlement`` (with ``JoinSettlement/isRepeat`` set), so that a
    /// worker that died before acknowledging does the same follow-ups
    /// again. The one exception: a member that failed and then succeeds
    /// (its dead letter was replayed) counts as succeeded from then on.
    ///
    /// - Throws: ``ResultStoreError``; `.corrupt` when the join is unknown
    ///   (expired, or the store was emptied).
    func settleMember(_ membership: JoinMembership, outcome: WorkflowMemberResult<JSONValue>) async throws -> JoinSettlement

    /// Marks a task step as started and says whether to run it:
    /// ``StepStart/run``, ``StepStart/finished(_:)`` when it ran to its
    /// end already (its recorded result), ``StepStart/running`` when
    /// another delivery of it is running now, ``StepStart/halted`` when its
    /// join failed fast.
    ///
    /// - Parameters:
    ///   - runner: who runs it: the worker and its consumer session. A
    ///     step marked running by the same runner is another copy running
    ///     beside this one: wait, whatever `takingOver` says.
    ///   - takingOver: the delivery was delivered before (redelivered, a
    ///     retry or a replay): a run marked by another runner is over (its
    ///     worker died, or its connection), so run again.
    /// - Throws: ``ResultStoreError``.
    func beginStep(_ uuid: String, join: JoinMembership?, runner: String, takingOver: Bool) async throws -> StepStart

    /// Records a task step's result, so that a later delivery of it is not
    /// run again.
    ///
    /// - Throws: ``ResultStoreError``.
    func finishStep(_ uuid: String, returning: JSONValue) async throws

    /// Forgets that a task step is running, unless it finished: the step
    /// failed, and a later delivery of it (a duplicate, a replay) may run.
    ///
    /// - Throws: ``ResultStoreError``.
    func releaseStep(_ uuid: String) async throws

    /// A join's progress, for `qtasks workflow` and dashboards; nil when
    /// unknown.
    ///
    /// - Throws: ``ResultStoreError``.
    func joinProgress(_ id: String) async throws -> JoinProgress?
}

/// A workflow as recorded: its tree and how it ended.
public struct WorkflowRecord: Sendable, Hashable, Codable {
    public var id: String
    public var policy: WorkflowPolicy
    public var root: WorkflowStep
    /// `process` while running, then `success` or `error`.
    public var status: TaskStatus
    public var result: JSONValue?
    public var error: String?
    public var createdAt: Date
    public var updatedAt: Date

    public init(
        id: String, policy: WorkflowPolicy, root: WorkflowStep, status: TaskStatus = .process, result: JSONValue? = nil,
        error: String? = nil, createdAt: Date = Date(), updatedAt: Date = Date()
    ) {
        self.id = id
        self.policy = policy
        self.root = root
        self.status = status
        self.result = result
        self.error = error
        self.createdAt = createdAt
        self.updatedAt = updatedAt
    }

    // Times as Unix seconds (`created_at`, `updated_at`), whatever the
    // encoder's date strategy: the record is read by other tools too.
    private enum CodingKeys: String, CodingKey {
        case id, policy, root, status, result, error
        case createdAt = "created_at"
        case updatedAt = "updated_at"
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        id = try container.decode(String.self, forKey: .id)
        policy = try container.decode(WorkflowPolicy.self, forKey: .policy)
        root = try container.decode(WorkflowStep.self, forKey: .root)
        status = try container.decode(TaskStatus.self, forKey: .status)
        result = try container.decodeIfPresent(JSONValue.self, forKey: .result)
        error = try container.decodeIfPresent(String.self, forKey: .error)
        createdAt = Date(timeIntervalSince1970: try container.decode(Double.self, forKey: .createdAt))
        updatedAt = Date(timeIntervalSince1970: try container.decode(Double.self, forKey: .updatedAt))
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(id, forKey: .id)
        try container.encode(policy, forKey: .policy)
        try container.encode(root, forKey: .root)
        try container.encode(status, forKey: .status)
        try container.encodeIfPresent(result, forKey: .result)
        try container.encodeIfPresent(error, forKey: .error)
        try container.encode(createdAt.timeIntervalSince1970, forKey: .createdAt)
        try container.encode(updatedAt.timeIntervalSince1970, forKey: .updatedAt)
    }
}

/// A group's join as opened: its members and what follows it.
public struct WorkflowJoin: Sendable, Hashable, Codable {
    /// The group's id.
    public var id: String
    public var workflowID: String
    public var policy: WorkflowPolicy
    /// Where the workflow's result goes.
    public var replyTo: String?
    public var members: [WorkflowStep]
    /// At most this many members run at once; nil: all.
    public var window: Int?
    /// The result of the step before the group, given to every member.
    public var input: JSONValue?
    /// The queue members without one of their own go to.
    public var queue: String
    /// What runs after the group, with the list of results.
    public var next: [WorkflowStep]
    /// The outer group this group is a member of.
    public var parent: JoinMembership?

    public init(
        id: String, workflowID: String, policy: WorkflowPolicy, replyTo: String?, members: [WorkflowStep], window: Int?,
        input: JSONValue?, queue: String, next: [WorkflowStep], parent: JoinMembership?
    ) {
        self.id = id
        self.workflowID = workflowID
        self.policy = policy
        self.replyTo = replyTo
        self.members = members
        self.window = window
        self.input = input
        self.queue = queue
        self.next = next
        self.parent = parent
    }

    /// How many members the first call starts.
    public var initialCount: Int { min(members.count, window ?? members.count) }
}

/// What follows from a member's end (``WorkflowStore/settleMember(_:outcome:)``).
public struct JoinSettlement: Sendable, Hashable, Codable {
    /// The join: what follows it. Its ``WorkflowJoin/members`` may be
    /// empty (a store need not read them all): the members to start are in
    /// ``start``.
    public var join: WorkflowJoin
    /// Members to start now (slots freed in the window), with their steps.
    public var start: [JoinStart] = []
    /// Set when this member's end completed the join: every member's
    /// outcome, in member order. Set for exactly one member of a join.
    public var completion: [WorkflowMemberResult<JSONValue>]?
    /// Set when this member's failure failed the workflow (fail fast).
    public var failedWorkflow = false
    /// The member's end was recorded before: this is that call's answer.
    public var isRepeat = false

    public init(join: WorkflowJoin) {
        self.join = join
    }
}

/// A member of a join to start: its index and its step.
public struct JoinStart: Sendable, Hashable, Codable {
    public var index: Int
    public var step: WorkflowStep

    public init(index: Int, step: WorkflowStep) {
        self.index = index
        self.step = step
    }
}

/// Whether to run a task step (``WorkflowStore/beginStep(_:join:runner:takingOver:)``).
public enum StepStart: Sendable, Hashable {
    case run
    /// It ran to its end before, with this result: do its follow-ups again,
    /// do not run it.
    case finished(JSONValue)
    /// Another delivery of it is running.
    case running
    /// Its group failed fast: do not run it.
    case halted
}

/// A join's progress.
public struct JoinProgress: Sendable, Hashable, Codable {
    public var total: Int
    public var started: Int
    public var settled: Int
    public var failed: Int
    public var halted: Bool
    public var completed: Bool
    /// Each member's outcome, nil while it has none.
    public var members: [WorkflowMemberResult<JSONValue>?]

    public init(total: Int, started: Int, settled: Int, failed: Int, halted: Bool, completed: Bool, members: [WorkflowMemberResult<JSONValue>?]) {
        self.total = total
        self.started = started
        self.settled = settled
        self.failed = failed
        self.halted = halted
        self.completed = completed
        self.members = members
    }
}

