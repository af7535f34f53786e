/// How the scope of a dependency ended, as its teardown sees it: so that a
/// transaction can commit after success and roll back otherwise.
public enum DependencyOutcome: Sendable {
    /// The task's handler returned (task scope).
    case success
    /// The call failed: the handler threw, a dependency's factory threw, or
    /// the task went over its time limit (``TaskTimeLimitError``). Task scope.
    case error(any Error)
    /// The call was cancelled, e.g. the worker's shutdown grace period ran
    /// out; the task will be requeued. Task scope.
    case cancelled
    /// The worker shut down (worker scope).
    case shutdown

    /// True after `error` and `cancelled`: the task did not complete, so
    /// its work should be rolled back.
    public var failed: Bool {
        switch self {
        case .error, .cancelled: return true
        case .success, .shutdown: return false
        }
    }

    /// The error, for `error`.
    public var error: (any Error)? {
        if case .error(let error) = self { return error }
        return nil
    }
}
