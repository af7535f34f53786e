extension TaskClient {
    /// Sends a workflow: one message that a worker turns into the
    /// workflow's first steps (docs/workflows.md). The handle's
    /// ``TaskHandle/value(timeout:)`` is the workflow's result: the last
    /// step's, or the final group's list.
    ///
    /// ```swift
    /// let total: Int = try await client.send(chord).value(timeout: .seconds(60))
    /// ```
    ///
    /// The workers need a ``WorkerConfiguration/workflowStore`` (the same
    /// one for all of them) when the workflow has a group.
    ///
    /// - Parameters:
    ///   - policy: what a failed group member does to the workflow
    ///     (default ``WorkflowPolicy/failFast``).
    ///   - queue: where the starting message goes; nil: the first task's
    ///     queue, else `"default"`. Steps without a queue of their own run
    ///     on this queue too.
    /// - Returns: a handle whose ``TaskHandle/uuid`` is the workflow's uuid
    ///   (`qtasks workflow UUID`).
    /// - Throws: ``QueueNameError`` for a step queue that cannot be a task
    ///   queue; otherwise as ``send(_:args:kwargs:queue:priority:)``.
    public func send<Output>(_ workflow: Workflow<Output>, policy: WorkflowPolicy = .failFast, queue: String? = nil) async throws -> TaskHandle<Output> {
        try handle(for: try await sendWorkflow(workflow.step, policy: policy, queue: queue, expectsReply: true))
    }

    /// ``send(_:policy:queue:)`` for a tree built by hand; the result is
    /// JSON.
    public func send(workflow step: WorkflowStep, policy: WorkflowPolicy = .failFast, queue: String? = nil) async throws -> TaskHandle<JSONValue> {
        try handle(for: try await sendWorkflow(step, policy: policy, queue: queue, expectsReply: true))
    }

    /// Sends a workflow whose result nobody waits for (its record is in
    /// the workflow store).
    @discardableResult
    public func sendWithoutReply<Output>(_ workflow: Workflow<Output>, policy: WorkflowPolicy = .failFast, queue: String? = nil) async throws -> SentTask {
        try await sendWorkflow(workflow.step, policy: policy, queue: queue, expectsReply: false).sent
    }

    private func sendWorkflow(_ step: WorkflowStep, policy: WorkflowPolicy, queue: String?, expectsReply: Bool) async throws -> Published {
        let root = step.withFreshIDs()
        // A step queue no worker could declare would fail the workflow
        // half-way; refused before anything is sent.
        for task in root.tasks {
            if let queue = task.queue {
                try QueueNaming.validateTaskQueue(queue, what: "the queue of step \(task.taskName)")
            }
        }
        // The first task's queue, else the app's queue for it: the
        // client's middleware sees the starting message like any task.
        var prepared = try await prepare(TaskRequest(
            WorkflowContext.startTaskName, queue: queue ?? root.firstQueue ?? appQueue(for: root.tasks.first?.taskName)))
        // The reply queue's name goes into the workflow when publishing
        // (the starting message itself gets no reply).
        prepared.message.workflow = WorkflowContext(id: prepared.message.uuid, policy: policy, replyTo: nil, start: root)
        return try await send(prepared, expectsReply: expectsReply)
    }
}
