extension TaskClient {
    /// The record of a task in the client's ``resultStore``: its status,
    /// result or error, attempts and events; nil when the store has none.
    ///
    /// - Throws: ``TaskClientError`` `.noResultStore` for a client made
    ///   without one; ``ResultStoreError`` from the store.
    public func storedRecord(of uuid: String) async throws -> TaskRecord? {
        try await requireResultStore(uuid).record(for: uuid)
    }

    /// Waits for a task to end and returns its result, from the client's
    /// ``resultStore`` rather than the reply: for a task this client did
    /// not send (an earlier run of the program, another producer) or sent
    /// without a reply (``sendWithoutReply(_:args:kwargs:queue:priority:)``).
    ///
    /// - Throws: ``TaskClientError`` `.noResultStore`;
    ///   ``ResultStoreError`` `.timedOut` when the task did not end in
    ///   time, else the store's error.
    public func storedResult(of uuid: String, timeout: Duration) async throws -> TaskResult {
        try await requireResultStore(uuid).result(for: uuid, timeout: timeout)
    }

    /// The typed value of a task, once it ended, from the client's
    /// ``resultStore``.
    ///
    /// ```swift
    /// let client = TaskClient(broker: broker, resultStore: try await ResultStores.open(url: "redis://cache:6379/0"))
    /// let sent = try await client.sendWithoutReply(Tasks.add, 2, 3)
    /// // … later, in another run of the program:
    /// let sum = try await client.storedValue(of: Tasks.add, uuid: sent.uuid, timeout: .seconds(30))   // 5
    /// ```
    ///
    /// - Throws: ``TaskFailedError`` for a task that failed, was cancelled
    ///   or returned what does not decode as `Output`; otherwise as
    ///   ``storedResult(of:timeout:)``.
    public func storedValue<each Argument, Output>(
        of task: TaskDefinition<repeat each Argument, Output>, uuid: String, timeout: Duration
    ) async throws -> Output {
        try TaskHandle<Output>.value(of: try await storedResult(of: uuid, timeout: timeout))
    }

    private func requireResultStore(_ uuid: String) throws(TaskClientError) -> any ResultStore {
        guard let resultStore else {
            throw TaskClientError(
                .noResultStore, "this client has no result store: make it with TaskClient(broker:…, resultStore:)", uuid: uuid)
        }
        return resultStore
    }
}
