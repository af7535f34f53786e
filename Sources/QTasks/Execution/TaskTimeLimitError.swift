/// A task ran longer than its time limit
/// (``WorkerConfiguration/taskTimeLimit``) and was cancelled.
///
/// In the result: `"TaskTimeLimitError: task 'slow' exceeded its time limit of 30 s"`.
public struct TaskTimeLimitError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The task that ran too long.
    public var taskName: String
    /// The limit it exceeded.
    public var limit: Duration

    /// - Parameters:
    ///   - taskName: the task that ran too long.
    ///   - limit: the limit it exceeded.
    public init(taskName: String, limit: Duration) {
        self.taskName = taskName
        self.limit = limit
    }

    public var description: String {
        // In seconds, as results have always shown it.
        "task '\(taskName)' exceeded its time limit of \(Seconds.double(limit).formatted()) s"
    }
}

extension Double {
    /// `30` for 30.0, `0.25` for 0.25.
    fileprivate func formatted() -> String {
        if let whole = Int64(exactly: self) { return String(whole) }
        return String(self)
    }
}
