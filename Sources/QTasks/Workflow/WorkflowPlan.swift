import Foundation

/// What one workflow step's end leads to: the store calls it makes (in
/// order, each idempotent) and the messages to publish before the step's
/// delivery is acknowledged. No broker I/O: the ``Worker`` publishes
/// ``publications`` with confirms, then acknowledges.
///
/// Every message is built from the step tree alone (uuids fixed when the
/// workflow was built), so a worker that dies anywhere before the ack
/// makes the same calls and the same messages when the delivery comes
/// back: at worst a message is published twice, and the step it carries
/// then runs once (``WorkflowStore/beginStep(_:join:runner:takingOver:)``).
struct WorkflowPlan {
    let context: WorkflowContext
    let store: (any WorkflowStore)?
    /// The queue of the delivery: steps without a queue of their own go there.
    let queue: String
    private(set) var publications: [Publication] = []

    init(context: WorkflowContext, store: (any WorkflowStore)?, queue: String) {
        self.context = context
        self.store = store
        self.queue = queue
    }

    /// The starting message ran: record the workflow, start its tree.
    mutating func start(_ root: WorkflowStep) async throws {
        if let store {
            try await store.recordWorkflow(WorkflowRecord(id: context.id, policy: context.policy, root: root))
        } else if Self.hasGroup(root) {
            throw WorkflowError(.storeRequired, "workflow \(context.id) has a group, and this worker has no workflow store to join it (start it with --result-store)")
        }
        try await begin(root, input: nil, next: [], join: nil, queue: queue)
    }

    /// A task step succeeded with `value`.
    mutating func stepSucceeded(_ value: JSONValue) async throws {
        if let first = context.next.first {
            try await begin(first, input: value, next: Array(context.next.dropFirst()), join: context.join, queue: queue)
        } else if let join = context.join {
            try await settle(join, WorkflowMemberResult(status: .success, returning: value))
        } else {
            try await finish(.success, result: value, error: nil)
        }
    }

    /// A task step ended without success (after its retries): the rest of
    /// its chain cannot run.
    mutating func stepFailed(status: TaskStatus, error: String) async throws {
        if let join = context.join {
            try await settle(join, WorkflowMemberResult(status: status, error: error))
        } else {
            try await finish(.error, result: nil, error: error)
        }
    }

    /// Publishes the workflow's end: the error result of a refused
    /// workflow, say.
    mutating func fail(_ error: String) async throws {
        try await finish(.error, result: nil, error: error)
    }

    private mutating func settle(_ membership: JoinMembership, _ outcome: WorkflowMemberResult<JSONValue>) async throws {
        guard let store else {
            throw WorkflowError(.storeRequired, "workflow \(context.id): a member of group \(membership.id) ended, and this worker has no workflow store")
        }
        let settlement = try await store.settleMember(membership, outcome: outcome)
        let join = settlement.join
        for member in settlement.start {
            try await begin(member.step, input: join.input, next: [], join: JoinMembership(id: join.id, index: member.index), queue: join.queue)
        }
        if settlement.failedWorkflow {
            try await finish(.error, result: nil, error: "member \(membership.index) of group \(membership.id) failed: \(outcome.error ?? outcome.status.rawValue)")
        }
        guard let outcomes = settlement.completion else { return }
        let value = Self.collect(outcomes, policy: join.policy)
        if let first = join.next.first {
            try await begin(first, input: value, next: Array(join.next.dropFirst()), join: join.parent, queue: join.queue)
        } else if let parent = join.parent {
            try await settle(parent, WorkflowMemberResult(status: .success, returning: value))
        } else {
            let failures = outcomes.enumerated().filter { !$0.element.succeeded }
            let note = failures.isEmpty ? nil : "\(failures.count) member(s) failed: " + failures.prefix(10).map { "#\($0.offset) \($0.element.error ?? $0.element.status.rawValue)" }.joined(separator: "; ")
            try await finish(.success, result: value, error: note)
        }
    }

    /// Starts a step: publishes a task, walks into a chain, opens a group.
    private mutating func begin(_ step: WorkflowStep, input: JSONValue?, next: [WorkflowStep], join: JoinMembership?, queue: String) async throws {
        switch step {
        case .task(let task):
            var args = task.args
            if let input { args.insert(input, at: 0) }
            var message = TaskMessage(taskName: task.taskName, args: args, kwargs: task.kwargs, priority: task.priority ?? 0, uuid: task.uuid)
            message.workflow = WorkflowContext(id: context.id, policy: context.policy, replyTo: context.replyTo, next: next, join: join)
            let target = task.queue ?? queue
            do {
                try QueueNaming.validateTaskQueue(target, what: "the queue of step \(task.taskName) (\(task.uuid))")
            } catch {
                throw WorkflowError(.invalidWorkflow, "workflow \(context.id): \(error)")
            }
            publications.append(Publication(
                Message(body: message.jsonBytes(), properties: MessageProperties(
                    contentType: "application/json", persistent: true, correlationID: task.uuid, messageID: task.uuid,
                    timestamp: UInt64(max(0, message.createdAt)))),
                to: target))
        case .chain(let steps):
            guard let first = steps.first else { return }
            try await begin(first, input: input, next: Array(steps.dropFirst()) + next, join: join, queue: queue)
        case .group(let id, let members, let window):
            guard let store else {
                throw WorkflowError(.storeRequired, "workflow \(context.id) has a group, and this worker has no workflow store to join it (start it with --result-store)")
            }
            let spec = WorkflowJoin(
                id: id, workflowID: context.id, policy: context.policy, replyTo: context.replyTo, members: members,
                window: window, input: input, queue: queue, next: next, parent: join)
            let initial = try await store.openJoin(spec)
            if members.isEmpty {
                // Nothing to wait for: the group's result is the empty list.
                if let first = next.first {
                    try await begin(first, input: .array([]), next: Array(next.dropFirst()), join: join, queue: queue)
                } else if let join {
                    try await settle(join, WorkflowMemberResult(status: .success, returning: .array([])))
                } else {
                    try await finish(.success, result: .array([]), error: nil)
                }
                return
            }
            for index in initial where members.indices.contains(index) {
                try await begin(members[index], input: input, next: [], join: JoinMembership(id: id, index: index), queue: queue)
            }
        }
    }

    /// Records the workflow's end and publishes its result to the
    /// sender's reply queue (`correlation_id` the workflow's uuid).
    private mutating func finish(_ status: TaskStatus, result: JSONValue?, error: String?) async throws {
        try await store?.finishWorkflow(context.id, status: status, result: result, error: error)
        guard let replyTo = context.replyTo, !replyTo.isEmpty else { return }
        let now = Date().timeIntervalSince1970
        let reply = TaskResult(
            uuid: context.id, taskName: WorkflowContext.startTaskName, status: status,
            returning: status == .success ? result : nil,
            traceback: status == .success ? nil : "WorkflowFailed: \(error ?? "a step failed")",
            createdAt: now, updatedAt: now, retry: 0)
        // Not mandatory: a sender that is gone (its reply queue with it)
        // is not a reason to hold the workflow's last step.
        publications.append(Publication(
            Message(body: reply.jsonBytes(), properties: MessageProperties(
                contentType: "application/json", persistent: false, correlationID: context.id)),
            to: replyTo, mandatory: false))
    }

    /// A group's result, from its members' outcomes in member order.
    static func collect(_ outcomes: [WorkflowMemberResult<JSONValue>], policy: WorkflowPolicy) -> JSONValue {
        switch policy {
        case .allSettled:
            return .array(outcomes.map { outcome in
                var object: [String: JSONValue] = ["status": .string(outcome.status.rawValue)]
                if outcome.succeeded { object["returning"] = outcome.returning ?? .null }
                if let error = outcome.error { object["error"] = .string(error) }
                return .object(object)
            })
        case .failFast, .continueOnFailure:
            return .array(outcomes.filter(\.succeeded).map { $0.returning ?? .null })
        }
    }

    static func hasGroup(_ step: WorkflowStep) -> Bool {
        switch step {
        case .task: return false
        case .chain(let steps): return steps.contains(where: hasGroup)
        case .group: return true
        }
    }
}

/// A workflow could not go on.
public struct WorkflowError: Error, Sendable, Hashable, CustomStringConvertible {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Base: String { case storeRequired, invalidWorkflow }
        private let base: Base
        private init(_ base: Base) { self.base = base }
        /// The workflow has a group and the worker no ``WorkerConfiguration/workflowStore``.
        public static let storeRequired = Code(.storeRequired)
        /// The workflow cannot be built (an empty chain, a window under 1).
        public static let invalidWorkflow = Code(.invalidWorkflow)
        public var description: String { base.rawValue }
    }

    public var code: Code
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { message }
}
