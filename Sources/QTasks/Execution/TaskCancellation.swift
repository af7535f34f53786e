/// Thrown by a task to cancel itself (``TaskContext/cancel(reason:)``).
///
/// The result's status is `cancel` with `traceback`
/// `"TaskCancellation: <reason>"`; the message is acknowledged: a
/// cancellation is the task's own final decision, so it is neither retried
/// nor dead-lettered. (QTasks' `context.cancel(reason)` does the same.)
public struct TaskCancellation: Error, Sendable, Hashable, CustomStringConvertible {
    /// Why the task gave up; shown in the result.
    public var reason: String

    public init(reason: String) {
        self.reason = reason
    }

    public var description: String { reason }
}
