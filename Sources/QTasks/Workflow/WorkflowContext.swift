import Foundation

/// The `workflow` field of a task message that is a step of a workflow
/// (docs/workflows.md, "On the wire"): which workflow, what runs after this
/// task, and which join it reports to.
///
/// ```json
/// "workflow": {"id": "…", "policy": "fail_fast", "reply_to": "amq.gen-…",
///              "next": [step, …], "join": {"id": "…", "index": 3}}
/// ```
///
/// The message that starts a workflow has task name ``WorkflowContext/startTaskName``
/// and carries the whole tree in `start` instead of `next`.
public struct WorkflowContext: Sendable, Hashable, Codable {
    /// The task name of the message that starts a workflow: run by the
    /// worker itself, not by a registered task.
    public static let startTaskName = "qtasks.workflow"

    /// The workflow's uuid; its result's `correlation_id`.
    public var id: String
    public var policy: WorkflowPolicy
    /// Where the workflow's result goes (the sender's reply queue); nil for
    /// none.
    public var replyTo: String?
    /// The rest of the chain this task is in: the first step runs with this
    /// task's result.
    public var next: [WorkflowStep]
    /// The group member this task's chain is, when it is in a group.
    public var join: JoinMembership?
    /// On the starting message only: the whole workflow.
    public var start: WorkflowStep?

    public init(
        id: String, policy: WorkflowPolicy, replyTo: String?, next: [WorkflowStep] = [], join: JoinMembership? = nil,
        start: WorkflowStep? = nil
    ) {
        self.id = id
        self.policy = policy
        self.replyTo = replyTo
        self.next = next
        self.join = join
        self.start = start
    }

    private enum CodingKeys: String, CodingKey {
        case id, policy, next, join, start
        case replyTo = "reply_to"
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        id = try container.decode(String.self, forKey: .id)
        policy = try container.decodeIfPresent(WorkflowPolicy.self, forKey: .policy) ?? .failFast
        replyTo = try container.decodeIfPresent(String.self, forKey: .replyTo)
        next = try container.decodeIfPresent([WorkflowStep].self, forKey: .next) ?? []
        join = try container.decodeIfPresent(JoinMembership.self, forKey: .join)
        start = try container.decodeIfPresent(WorkflowStep.self, forKey: .start)
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(id, forKey: .id)
        try container.encode(policy, forKey: .policy)
        try container.encodeIfPresent(replyTo, forKey: .replyTo)
        if !next.isEmpty { try container.encode(next, forKey: .next) }
        try container.encodeIfPresent(join, forKey: .join)
        try container.encodeIfPresent(start, forKey: .start)
    }
}

extension WorkflowContext {
    /// The `workflow` field of a task body that could not be read as a
    /// task (an unknown task, wrong arguments, over the size limit): so
    /// that its workflow still learns that the step failed. nil when the
    /// body has none, or it does not parse.
    static func peek(in body: [UInt8]) -> WorkflowContext? {
        struct Holder: Decodable { var workflow: WorkflowContext? }
        // Only bodies that name a workflow pay for a second parse.
        guard body.count <= 64 * 1_048_576, containsWorkflowKey(body) else { return nil }
        return (try? JSONDecoder().decode(Holder.self, from: Data(body)))?.workflow
    }

    private static func containsWorkflowKey(_ body: [UInt8]) -> Bool {
        let key = Array(#""workflow""#.utf8)
        guard body.count >= key.count else { return false }
        for start in 0...(body.count - key.count) where body[start] == key[0] {
            if body[start..<(start + key.count)].elementsEqual(key) { return true }
        }
        return false
    }
}

/// Member `index` of the group whose join is `id`.
public struct JoinMembership: Sendable, Hashable, Codable {
    public var id: String
    public var index: Int

    public init(id: String, index: Int) {
        self.id = id
        self.index = index
    }
}
