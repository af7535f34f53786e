/// What became of one delivery, for the worker to settle it: acknowledge,
/// dead-letter, or requeue.
public enum TaskOutcome: Sendable {
    /// The handler returned; acknowledge.
    case completed(TaskResult)
    /// The handler threw; the result has status `error`. Dead-letter.
    case failed(TaskResult, TaskFailure)
    /// The message is bad input (oversize, malformed, unknown task, wrong
    /// arguments) and the handler never ran; status `error`. Dead-letter.
    case rejected(TaskResult, TaskFailure)
    /// The run was cancelled (worker shutdown past its grace period); status
    /// `cancel`. Requeue, so that the task runs again.
    case cancelled(TaskResult)

    /// The result to publish to `reply_to`.
    public var result: TaskResult {
        switch self {
        case .completed(let result), .failed(let result, _), .rejected(let result, _), .cancelled(let result):
            return result
        }
    }

    /// The failure, for `failed` and `rejected`.
    public var failure: TaskFailure? {
        switch self {
        case .failed(_, let failure), .rejected(_, let failure): return failure
        case .completed, .cancelled: return nil
        }
    }
}
