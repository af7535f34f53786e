/// One node of a workflow's tree, as it travels in task messages
/// (docs/workflows.md, "On the wire").
///
/// Every task and every group gets its id when the workflow is built, on
/// the producer's side, so that a message delivered twice (at-least-once)
/// names the same step and the same join both times.
///
/// JSON shapes:
/// - task: `{"task": "add", "uuid": "…", "args": [...], "kwargs": {...}, "queue": "q", "priority": 0}`
///   (`kwargs`, `queue` and `priority` optional);
/// - chain: `{"chain": [step, ...]}`: each step gets the previous one's
///   result as its first positional argument;
/// - group: `{"group": [step, ...], "id": "…", "window": 50}`: the members
///   run in parallel (at most `window` at once when given) and the group's
///   result is the list of theirs, in member order.
public indirect enum WorkflowStep: Sendable, Hashable {
    case task(WorkflowTask)
    case chain([WorkflowStep])
    case group(id: String, members: [WorkflowStep], window: Int?)

    /// The task steps in this subtree, depth first.
    public var tasks: [WorkflowTask] {
        switch self {
        case .task(let task): return [task]
        case .chain(let steps): return steps.flatMap(\.tasks)
        case .group(_, let members, _): return members.flatMap(\.tasks)
        }
    }

    /// The number of task steps in this subtree.
    public var taskCount: Int {
        switch self {
        case .task: return 1
        case .chain(let steps): return steps.reduce(0) { $0 + $1.taskCount }
        case .group(_, let members, _): return members.reduce(0) { $0 + $1.taskCount }
        }
    }
}

/// A task step of a workflow: which task, its own arguments, where it goes.
public struct WorkflowTask: Sendable, Hashable {
    /// The task's uuid, fixed when the workflow is built.
    public var uuid: String
    /// The `task_name`.
    public var taskName: String
    /// Its own positional arguments; the previous step's result, when there
    /// is one, is put before them.
    public var args: [JSONValue]
    public var kwargs: [String: JSONValue]
    /// The task queue; nil: the queue of the message that starts it.
    public var queue: String?
    public var priority: Int?

    public init(
        taskName: String, args: [JSONValue] = [], kwargs: [String: JSONValue] = [:], queue: String? = nil,
        priority: Int? = nil, uuid: String = TaskUUID.make()
    ) {
        self.uuid = uuid
        self.taskName = taskName
        self.args = args
        self.kwargs = kwargs
        self.queue = queue
        self.priority = priority
    }
}

/// What a workflow does when one of a group's members fails (after its
/// retries): docs/workflows.md, "Failure policies".
public enum WorkflowPolicy: String, Sendable, Hashable, Codable, CaseIterable {
    /// The first failed member fails the workflow at once: its result is an
    /// error naming the member, the group's callback does not run, members
    /// not yet started are not started (those already queued are
    /// dead-lettered unrun when a worker picks them up).
    case failFast = "fail_fast"
    /// Every member runs to its end, and the group's result is every
    /// member's outcome (``WorkflowMemberResult``), failures included.
    case allSettled = "all_settled"
    /// Failed members are left out of the group's result (the list holds
    /// the successful members' results, in order); their errors are listed
    /// in the workflow's record.
    case continueOnFailure = "continue"
}

/// One member's outcome in the result of a group under
/// ``WorkflowPolicy/allSettled``: `{"status": "success", "returning": …}`
/// or `{"status": "error", "error": "<type>: <message>"}`.
public struct WorkflowMemberResult<Value: Codable & Sendable>: Codable, Sendable {
    /// `success`, `error` or `cancel`.
    public var status: TaskStatus
    /// The member's result when it succeeded.
    public var returning: Value?
    /// `<error type>: <message>` when it did not.
    public var error: String?

    public var succeeded: Bool { status == .success }

    public init(status: TaskStatus, returning: Value? = nil, error: String? = nil) {
        self.status = status
        self.returning = returning
        self.error = error
    }
}

extension WorkflowMemberResult: Equatable where Value: Equatable {}
extension WorkflowMemberResult: Hashable where Value: Hashable {}

extension WorkflowStep: Codable {
    private enum Key: String, CodingKey {
        case task, uuid, args, kwargs, queue, priority, chain, group, id, window
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: Key.self)
        // One kind per step: with two, one of them would be dropped in
        // silence (a chain beside a task, a group beside a chain).
        let kinds = [Key.task, .chain, .group].filter { container.contains($0) }
        if kinds.count > 1 {
            throw DecodingError.dataCorrupted(.init(
                codingPath: decoder.codingPath,
                debugDescription: "a workflow step has one of \"task\", \"chain\" or \"group\", not \(kinds.map { "\"\($0.stringValue)\"" }.joined(separator: " and "))"))
        }
        if let name = try container.decodeIfPresent(String.self, forKey: .task) {
            self = .task(WorkflowTask(
                taskName: name,
                args: try container.decodeIfPresent([JSONValue].self, forKey: .args) ?? [],
                kwargs: try container.decodeIfPresent([String: JSONValue].self, forKey: .kwargs) ?? [:],
                queue: try container.decodeIfPresent(String.self, forKey: .queue),
                priority: try Self.wholeNumber(container, .priority, "a task's priority"),
                // Always present on the wire; a tree written by hand (`qtasks
                // workflow send`) may leave it out: sending draws new ids.
                uuid: try container.decodeIfPresent(String.self, forKey: .uuid) ?? TaskUUID.make()))
        } else if let steps = try container.decodeIfPresent([WorkflowStep].self, forKey: .chain) {
            guard !steps.isEmpty else {
                throw DecodingError.dataCorruptedError(forKey: .chain, in: container, debugDescription: "a chain needs at least one step")
            }
            self = .chain(steps)
        } else if let members = try container.decodeIfPresent([WorkflowStep].self, forKey: .group) {
            let window = try Self.wholeNumber(container, .window, "a group's window")
            if let window, window < 1 {
                throw DecodingError.dataCorruptedError(
                    forKey: .window, in: container, debugDescription: "a group's window must be a whole number of at least 1, not \(window)")
            }
            self = .group(id: try container.decodeIfPresent(String.self, forKey: .id) ?? TaskUUID.make(), members: members, window: window)
        } else {
            throw DecodingError.dataCorrupted(.init(
                codingPath: decoder.codingPath, debugDescription: "a workflow step must have \"task\", \"chain\" or \"group\""))
        }
    }

    /// An integer field, or nil when absent (or null). Anything but a whole
    /// number (`2.5`, `"3"`, `true`) is refused with the field and what was
    /// expected: `JSONDecoder` itself reports a fraction where it wants an
    /// `Int` as "The given data was not valid JSON", naming neither.
    private static func wholeNumber(_ container: KeyedDecodingContainer<Key>, _ key: Key, _ what: String) throws -> Int? {
        guard let value = try container.decodeIfPresent(JSONValue.self, forKey: key) else { return nil }
        switch value {
        case .null:
            return nil
        case .int(let number):
            if let number = Int(exactly: number) { return number }
        case .double(let number):
            if let number = Int(exactly: number) { return number }
        default:
            break
        }
        throw DecodingError.dataCorruptedError(
            forKey: key, in: container, debugDescription: "\(what) must be a whole number, not \(value)")
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: Key.self)
        switch self {
        case .task(let task):
            try container.encode(task.taskName, forKey: .task)
            try container.encode(task.uuid, forKey: .uuid)
            try container.encode(task.args, forKey: .args)
            if !task.kwargs.isEmpty { try container.encode(task.kwargs, forKey: .kwargs) }
            try container.encodeIfPresent(task.queue, forKey: .queue)
            try container.encodeIfPresent(task.priority, forKey: .priority)
        case .chain(let steps):
            try container.encode(steps, forKey: .chain)
        case .group(let id, let members, let window):
            try container.encode(members, forKey: .group)
            try container.encode(id, forKey: .id)
            try container.encodeIfPresent(window, forKey: .window)
        }
    }
}
