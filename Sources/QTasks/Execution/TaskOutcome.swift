/// What became of one delivery, for the worker to settle it: acknowledge,
/// retry later, dead-letter, or requeue.
public enum TaskOutcome: Sendable {
    /// The handler returned; acknowledge.
    case completed(TaskResult)
    /// The handler threw and its retry policy gives it another attempt after
    /// `delay`: publish a delayed copy with the next attempt number,
    /// then acknowledge. The result (status `error`) is not published: the
    /// waiting client gets only the final one.
    case retry(TaskResult, TaskFailure, delay: Duration)
    /// The handler threw and will not be retried (attempts used up, or an
    /// error the policy does not retry); status `error`. Dead-letter.
    case failed(TaskResult, TaskFailure)
    /// The task cancelled itself (``TaskCancellation``); status `cancel`.
    /// Publish the result and acknowledge: neither retried nor dead-lettered.
    case cancelledByTask(TaskResult)
    /// The message is bad input (oversize, malformed, unknown task, wrong
    /// arguments) and the handler never ran; status `error`. Dead-letter.
    case rejected(TaskResult, TaskFailure)
    /// The run was cancelled (worker shutdown past its grace period); status
    /// `cancel`. Requeue, so that the task runs again.
    case cancelled(TaskResult)

    /// The result to publish to `reply_to`.
    public var result: TaskResult {
        switch self {
        case .completed(let result), .failed(let result, _), .rejected(let result, _), .cancelled(let result),
            .retry(let result, _, _), .cancelledByTask(let result):
            return result
        }
    }

    /// The failure, for `failed` and `rejected`.
    public var failure: TaskFailure? {
        switch self {
        case .failed(_, let failure), .rejected(_, let failure), .retry(_, let failure, _): return failure
        case .completed, .cancelled, .cancelledByTask: return nil
        }
    }
}
