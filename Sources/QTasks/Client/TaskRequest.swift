/// A task to send by name, with its arguments as JSON: one element of
/// ``TaskClient/send(batch:)``.
public struct TaskRequest: Sendable, Hashable {
    /// The `task_name`.
    public var taskName: String
    /// Positional arguments (`args`).
    public var args: [JSONValue]
    /// Keyword arguments (`kwargs`).
    public var kwargs: [String: JSONValue]
    /// The task queue; nil means the task's registered queue when the
    /// client has the app, else `"default"`.
    public var queue: String?
    /// The QTasks priority (lower runs first); nil means 0.
    public var priority: Int?

    public init(
        _ taskName: String, args: [JSONValue] = [], kwargs: [String: JSONValue] = [:], queue: String? = nil,
        priority: Int? = nil
    ) {
        self.taskName = taskName
        self.args = args
        self.kwargs = kwargs
        self.queue = queue
        self.priority = priority
    }
}
