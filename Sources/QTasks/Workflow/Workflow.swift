/// A workflow built from typed task definitions: chains, groups, chords
/// and maps (docs/workflows.md). `Output` is the type of its result: the
/// last step's, or the list of a group's.
///
/// ```swift
/// // chain: add(2, 2), then mul(result, 4), then show(result)
/// let chain = try Workflow.task(Tasks.add, 2, 2).then(Tasks.mul, 4).then(Tasks.show)
/// // chord: 100 adds in parallel, then sum([results])
/// let chord = try Workflow.chord((0..<100).map { try Workflow.task(Tasks.add, $0, $0) }, then: Tasks.sum)
/// // map: double(x) for 10,000 inputs, at most 50 at once
/// let map = try Workflow.map(Tasks.double, over: Array(0..<10_000), maxConcurrent: 50)
/// let total: Int = try await client.send(chord).value(timeout: .seconds(60))
/// ```
///
/// Each step after the first gets the previous step's result as its first
/// positional argument (Celery's convention for chains); the arguments
/// given with ``then(_:_:queue:)`` follow it. A group's result is the list
/// of its members' results in member order, whatever order they ended in.
///
/// A workflow is a value: the uuids of its tasks and groups are drawn
/// anew each time it is sent (``TaskClient/send(_:policy:queue:)``).
public struct Workflow<Output: Codable & Sendable>: Sendable {
    /// The tree as it goes on the wire.
    public let step: WorkflowStep

    /// A workflow from a tree built by hand; its result is read as `Output`.
    public init(step: WorkflowStep) {
        self.step = step
    }

    /// A workflow of one task.
    ///
    /// - Parameter queue: nil: the definition's ``TaskOptions/queue``, else
    ///   the queue the workflow is sent to.
    /// - Throws: `EncodingError` for an argument that does not encode.
    public static func task<each Argument>(
        _ task: TaskDefinition<repeat each Argument, Output>, _ arguments: repeat each Argument, queue: String? = nil
    ) throws -> Workflow<Output> {
        Workflow(step: .task(WorkflowTask(taskName: task.name, args: try task.encode(repeat each arguments), queue: queue ?? task.options.queue)))
    }

    /// A task that takes its first argument from the step before it, and
    /// `rest` after it: a member of a group that follows a step
    /// (`first.then(Workflow.group([Workflow.step(Tasks.double), …]))`).
    /// The input's type is the workflow author's to match: it is not
    /// checked at compile time.
    ///
    /// - Throws: `EncodingError` for an argument that does not encode.
    public static func step<Input, each Rest>(
        _ task: TaskDefinition<Input, repeat each Rest, Output>, _ rest: repeat each Rest, queue: String? = nil
    ) throws -> Workflow<Output> {
        var args: [JSONValue] = []
        for argument in repeat each rest {
            args.append(try JSONValue(encoding: argument))
        }
        return Workflow(step: .task(WorkflowTask(taskName: task.name, args: args, queue: queue ?? task.options.queue)))
    }

    /// This workflow, then `task` with this workflow's result as its first
    /// argument and `rest` after it.
    ///
    /// - Throws: `EncodingError` for an argument that does not encode.
    public func then<Next, each Rest>(
        _ task: TaskDefinition<Output, repeat each Rest, Next>, _ rest: repeat each Rest, queue: String? = nil
    ) throws -> Workflow<Next> {
        var args: [JSONValue] = []
        for argument in repeat each rest {
            args.append(try JSONValue(encoding: argument))
        }
        let next = WorkflowStep.task(WorkflowTask(taskName: task.name, args: args, queue: queue ?? task.options.queue))
        return then(Workflow<Next>(step: next))
    }

    /// This workflow, then `next` (a task, a chain, a group) with this
    /// workflow's result as its input: the first argument of its first
    /// task, or of each member's first task for a group.
    public func then<Next>(_ next: Workflow<Next>) -> Workflow<Next> {
        var steps: [WorkflowStep] = if case .chain(let own) = step { own } else { [step] }
        if case .chain(let more) = next.step { steps += more } else { steps.append(next.step) }
        return Workflow<Next>(step: .chain(steps))
    }

    /// Runs `members` in parallel; the result is the list of their results,
    /// in member order.
    public static func group<Member>(_ members: [Workflow<Member>]) -> Workflow<Output> where Output == [Member] {
        Workflow(step: .group(id: TaskUUID.make(), members: members.map(\.step), window: nil))
    }

    /// A chord: runs `header` in parallel, then `callback` with the list of
    /// their results (in member order) as its first argument and `rest`
    /// after it. The callback runs once, after the last member ended.
    ///
    /// - Throws: `EncodingError` for an argument that does not encode.
    public static func chord<Member, each Rest>(
        _ header: [Workflow<Member>], then callback: TaskDefinition<[Member], repeat each Rest, Output>, _ rest: repeat each Rest,
        queue: String? = nil
    ) throws -> Workflow<Output> {
        try Workflow<[Member]>.group(header).then(callback, repeat each rest, queue: queue)
    }

    /// Runs `task` once per input, at most `maxConcurrent` at a time (nil:
    /// all at once); the result is the list of results, in input order.
    ///
    /// The inputs are kept in the workflow store while the map runs; each
    /// member that ends starts the next input.
    ///
    /// - Throws: `EncodingError` for an input that does not encode;
    ///   ``WorkflowError`` `.invalidWorkflow` when `maxConcurrent` is under 1.
    public static func map<Input, Member>(
        _ task: TaskDefinition<Input, Member>, over inputs: [Input], maxConcurrent: Int? = nil, queue: String? = nil
    ) throws -> Workflow<Output> where Output == [Member] {
        if let maxConcurrent, maxConcurrent < 1 {
            throw WorkflowError(.invalidWorkflow, "maxConcurrent must be at least 1, got \(maxConcurrent)")
        }
        let queue = queue ?? task.options.queue
        let members = try inputs.map { input in
            WorkflowStep.task(WorkflowTask(taskName: task.name, args: [try JSONValue(encoding: input)], queue: queue))
        }
        return Workflow(step: .group(id: TaskUUID.make(), members: members, window: maxConcurrent))
    }

    /// This group's result read as every member's outcome: what a group
    /// yields in a workflow sent with ``WorkflowPolicy/allSettled``.
    public func settled<Member>() -> Workflow<[WorkflowMemberResult<Member>]> where Output == [Member] {
        Workflow<[WorkflowMemberResult<Member>]>(step: step)
    }
}

extension WorkflowStep {
    /// The same tree with new uuids for every task and group: a workflow
    /// value sent twice, or a step used twice in it, must not share ids.
    public func withFreshIDs() -> WorkflowStep {
        switch self {
        case .task(var task):
            task.uuid = TaskUUID.make()
            return .task(task)
        case .chain(let steps):
            return .chain(steps.map { $0.withFreshIDs() })
        case .group(_, let members, let window):
            return .group(id: TaskUUID.make(), members: members.map { $0.withFreshIDs() }, window: window)
        }
    }

    /// The queue of the first task that runs, nil when it has none.
    var firstQueue: String? {
        switch self {
        case .task(let task): return task.queue
        case .chain(let steps): return steps.first?.firstQueue
        case .group(_, let members, _): return members.first?.firstQueue
        }
    }
}
