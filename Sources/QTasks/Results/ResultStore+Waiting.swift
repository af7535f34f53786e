import Foundation

extension ResultStore {
    /// Waits until the task ended (`success`, `error` or `cancel`) and
    /// returns its record. For a producer that did not wait for the reply
    /// (it restarted, or sent without one): the record outlives it.
    ///
    /// Reads the record every 20 ms at first, then less often, up to every
    /// 500 ms (a store has no change feed common to every backend; the
    /// events exchange is the push alternative).
    ///
    /// - Parameters:
    ///   - uuid: the task's uuid.
    ///   - timeout: how long to wait.
    /// - Returns: the finished record.
    /// - Throws: ``ResultStoreError`` `.timedOut` (saying whether the store
    ///   has no record or which status it is in) when the time runs out,
    ///   else what ``record(for:)`` throws; `CancellationError` when the
    ///   waiting task is cancelled.
    public func waitForRecord(of uuid: String, timeout: Duration) async throws -> TaskRecord {
        let deadline = ContinuousClock.now + timeout
        var pause = Duration.milliseconds(20)
        while true {
            let record = try await record(for: uuid)
            if let record, record.isFinished { return record }
            let now = ContinuousClock.now
            guard now < deadline else {
                let state = record.map { "it is '\($0.status)' (attempt \($0.attempt))" } ?? "the store has no record of it"
                throw ResultStoreError(
                    .timedOut, "task \(uuid) did not finish within \(Seconds.logValue(timeout)) s: \(state)")
            }
            try await Task.sleep(for: min(pause, deadline - now))
            pause = min(pause * 2, .milliseconds(500))
        }
    }

    /// The task's result as the result message would have carried it, once
    /// it ended (``waitForRecord(of:timeout:)``).
    public func result(for uuid: String, timeout: Duration) async throws -> TaskResult {
        try await waitForRecord(of: uuid, timeout: timeout).taskResult
    }

    /// The typed value a task returned, once it ended: what
    /// ``TaskHandle/value(timeout:)`` gives, from the store instead of the
    /// reply.
    ///
    /// ```swift
    /// let sum = try await store.value(of: Tasks.add, uuid: uuid, timeout: .seconds(5))   // an Int
    /// ```
    ///
    /// - Throws: ``TaskFailedError`` for a task that failed, was cancelled
    ///   or returned what does not decode as `Output`; otherwise as
    ///   ``waitForRecord(of:timeout:)``.
    public func value<each Argument, Output>(
        of task: TaskDefinition<repeat each Argument, Output>, uuid: String, timeout: Duration
    ) async throws -> Output {
        try TaskHandle<Output>.value(of: try await result(for: uuid, timeout: timeout))
    }
}
