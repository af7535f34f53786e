import QTasks

/// The benchmark's tasks, shared by its worker and its client. They return
/// nothing: the rows measure the queue, not result encoding (row 3 sends
/// with a `reply_to` and gets the null result).
enum BenchmarkTasks {
    /// Does nothing but count itself.
    static let noop = TaskDefinition("noop")
    /// Resolves one task-scoped and one worker-scoped dependency.
    static let noopDepends = TaskDefinition("noop_depends")
    /// Writes one State update under its own key.
    static let noopState = TaskDefinition("noop_state")
}
