/// A dependency that could not be provided or torn down.
///
/// In a task's result it reads
/// `"DependencyError: dependency 'database' failed: connection refused"`.
public struct DependencyError: Error, Sendable, CustomStringConvertible {
    /// The kind of failure; new codes may be added.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Base: String { case factoryFailed, teardownFailed, cycle, scopeMismatch, unavailable }
        private let base: Base
        private init(_ base: Base) { self.base = base }
        /// The dependency's factory threw; ``DependencyError/underlyingError``
        /// holds what it threw. Fails the task.
        public static let factoryFailed = Code(.factoryFailed)
        /// A teardown threw. Logged at `error` level; fails a task whose
        /// handler had succeeded (a failed commit must not read as success),
        /// and leaves a task that had already failed with its first error.
        public static let teardownFailed = Code(.teardownFailed)
        /// The dependency (indirectly) needs itself; ``DependencyError/path``
        /// is the cycle, first and last names equal.
        public static let cycle = Code(.cycle)
        /// A worker-scoped factory asked for a task-scoped dependency, which
        /// would die before it.
        public static let scopeMismatch = Code(.scopeMismatch)
        /// No scope to resolve in: the task call has ended, the worker is
        /// shutting down, or the ``TaskContext`` was not made by a worker.
        public static let unavailable = Code(.unavailable)
        public var description: String { base.rawValue }
    }

    public var code: Code
    /// One line saying what is wrong, naming the dependency.
    public var message: String
    /// The dependency concerned.
    public var dependency: String
    /// The chain of dependencies being resolved, outermost first, ending with
    /// ``dependency`` (for `cycle`: the cycle).
    public var path: [String]
    /// What the factory or teardown threw, for `factoryFailed` and
    /// `teardownFailed`.
    public var underlyingError: (any Error)?

    /// - Parameters:
    ///   - dependency: the dependency concerned.
    ///   - path: the resolution path, outermost first; empty means
    ///     `[dependency]`.
    public init(_ code: Code, _ message: String, dependency: String, path: [String] = [], underlyingError: (any Error)? = nil) {
        self.code = code
        self.message = message
        self.dependency = dependency
        self.path = path.isEmpty ? [dependency] : path
        self.underlyingError = underlyingError
    }

    public var description: String { message }

    static func factoryFailed(_ path: [DependencyKey], _ error: any Error) -> DependencyError {
        let name = path.last?.name ?? "?"
        var message = "dependency '\(name)' failed: \(TaskFailure.message(of: error))"
        if path.count > 1 {
            message += " (resolving \(path.map(\.name).joined(separator: " -> ")))"
        }
        return DependencyError(.factoryFailed, message, dependency: name, path: path.map(\.name), underlyingError: error)
    }

    static func teardownFailed(_ name: String, _ error: any Error) -> DependencyError {
        DependencyError(
            .teardownFailed,
            "teardown of dependency '\(name)' failed: \(TaskFailure.message(of: error))",
            dependency: name,
            underlyingError: error
        )
    }

    static func cycle(_ path: [DependencyKey]) -> DependencyError {
        let names = path.map(\.name)
        return DependencyError(
            .cycle,
            "dependency cycle: \(names.joined(separator: " -> "))",
            dependency: names.last ?? "?",
            path: names
        )
    }

    static func unavailable(_ name: String, _ reason: String) -> DependencyError {
        DependencyError(.unavailable, "dependency '\(name)' is unavailable: \(reason)", dependency: name)
    }
}
