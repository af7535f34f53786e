extension TaskClient {
    /// Sends a typed task: the arguments are of the definition's types and
    /// the handle's ``TaskHandle/value(timeout:)`` of its result type.
    ///
    /// ```swift
    /// let sum = try await client.send(Tasks.add, 2, 3).value(timeout: .seconds(5))   // an Int
    /// ```
    ///
    /// On the wire as ``send(_:args:kwargs:queue:priority:)`` sends it:
    /// `args` the arguments encoded as JSON, in order.
    ///
    /// - Parameters:
    ///   - queue: nil (the default) means the definition's
    ///     ``TaskOptions/queue``, else the app's, else `"default"`.
    ///   - priority: the QTasks priority (lower runs first; default 0).
    /// - Throws: `EncodingError` for an argument that does not encode, and
    ///   what ``send(_:args:kwargs:queue:priority:)`` throws.
    public func send<each Argument, Output>(
        _ task: TaskDefinition<repeat each Argument, Output>,
        _ arguments: repeat each Argument,
        queue: String? = nil,
        priority: Int? = nil
    ) async throws -> TaskHandle<Output> {
        let request = TaskRequest(task.name, args: try task.encode(repeat each arguments), queue: queue ?? task.options.queue, priority: priority)
        return try handle(for: try await send(try await prepare(request), expectsReply: true))
    }

    /// Sends a typed task without `reply_to`: nothing to wait for (see
    /// ``sendWithoutReply(_:args:kwargs:queue:priority:)``).
    ///
    /// - Throws: as ``send(_:_:queue:priority:)``.
    @discardableResult
    public func sendWithoutReply<each Argument, Output>(
        _ task: TaskDefinition<repeat each Argument, Output>,
        _ arguments: repeat each Argument,
        queue: String? = nil,
        priority: Int? = nil
    ) async throws -> SentTask {
        let request = TaskRequest(task.name, args: try task.encode(repeat each arguments), queue: queue ?? task.options.queue, priority: priority)
        return try await send(try await prepare(request), expectsReply: false).sent
    }

    /// Sends the task once per element of `batch` (each element the
    /// arguments of one call), pipelined within the confirm window as
    /// ``send(batch:)`` does; returns once all were confirmed, with their
    /// handles in order.
    ///
    /// ```swift
    /// let handles = try await client.send(Tasks.add, batch: [(1, 2), (3, 4)])
    /// ```
    ///
    /// - Throws: `EncodingError` for an argument that does not encode
    ///   (before anything is sent); `BatchSendError<Output>` when a send
    ///   failed for good.
    public func send<each Argument, Output>(
        _ task: TaskDefinition<repeat each Argument, Output>,
        batch: [(repeat each Argument)],
        queue: String? = nil,
        priority: Int? = nil
    ) async throws -> [TaskHandle<Output>] {
        try await sendBatch(try requests(task, batch, queue: queue, priority: priority), as: Output.self)
    }

    /// ``send(_:batch:queue:priority:)`` without `reply_to`.
    ///
    /// - Throws: `EncodingError`; `BatchSendError<NoResult>` when a send
    ///   failed for good.
    @discardableResult
    public func sendWithoutReply<each Argument, Output>(
        _ task: TaskDefinition<repeat each Argument, Output>,
        batch: [(repeat each Argument)],
        queue: String? = nil,
        priority: Int? = nil
    ) async throws -> [SentTask] {
        try await sendBatchWithoutReply(try requests(task, batch, queue: queue, priority: priority))
    }

    private func requests<each Argument, Output>(
        _ task: TaskDefinition<repeat each Argument, Output>,
        _ batch: [(repeat each Argument)],
        queue: String?,
        priority: Int?
    ) throws -> [TaskRequest] {
        try batch.map { call in
            TaskRequest(task.name, args: try task.encode(repeat each call), queue: queue ?? task.options.queue, priority: priority)
        }
    }
}
