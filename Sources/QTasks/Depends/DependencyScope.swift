/// How long one instance of a ``Dependency`` lives.
///
/// - ``task``: one instance per task call, shared by everything that
///   resolves it during that call, torn down when the call ends.
/// - ``worker``: one instance per ``Worker`` (or ``TaskRunner``), created
///   on first use, torn down at graceful shutdown.
public struct DependencyScope: Hashable, Sendable, CustomStringConvertible {
    private enum Base: String { case task, worker }
    private let base: Base
    private init(_ base: Base) { self.base = base }

    /// One instance per task call, torn down when the call ends (success,
    /// error, cancellation or time limit).
    public static let task = DependencyScope(.task)
    /// One instance per worker, created once on first use even when many
    /// tasks ask at the same moment, torn down at graceful shutdown after
    /// the running tasks finished.
    public static let worker = DependencyScope(.worker)

    /// `task` or `worker`.
    public var description: String { base.rawValue }
}
