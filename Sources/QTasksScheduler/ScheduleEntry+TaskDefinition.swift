import QTasks

extension ScheduleEntry {
    /// An entry that sends a typed task with typed arguments:
    ///
    /// ```swift
    /// let nightly = try ScheduleEntry(Tasks.cleanup, "tmp", schedule: try .cron("0 3 * * *"))
    /// ```
    ///
    /// - Parameters:
    ///   - name: the entry's name in the shared State; nil means
    ///     `"<task>@<queue>@<schedule>"`.
    ///   - queue: nil means the definition's ``TaskOptions/queue``, else
    ///     `"default"`.
    /// - Throws: `EncodingError` for an argument that does not encode.
    public init<each Argument, Output>(
        name: String? = nil,
        _ task: TaskDefinition<repeat each Argument, Output>,
        _ arguments: repeat each Argument,
        queue: String? = nil,
        schedule: Schedule
    ) throws {
        var args: [JSONValue] = []
        for argument in repeat each arguments {
            args.append(try JSONValue(encoding: argument))
        }
        self.init(name: name, taskName: task.name, args: args, queue: queue ?? task.options.queue ?? "default", schedule: schedule)
    }
}
