extension TaskContext {
    /// Returns this task call's instance of `dependency` (task scope) or the
    /// worker's (worker scope), setting it up on first use.
    ///
    /// ```swift
    /// try app.register("report") { (context: TaskContext, day: String) in
    ///     let db = try await context.resolve(database)
    ///     return try await db.report(for: day)
    /// }
    /// ```
    ///
    /// - Returns: the same instance every time within one call (task scope)
    ///   or one worker (worker scope).
    /// - Throws: ``DependencyError``: `.factoryFailed` names the dependency
    ///   and the cause; `.cycle` names the path; `.unavailable` when this
    ///   context was not made by a worker or its call has ended.
    ///   `CancellationError` when the task is cancelled while waiting.
    public func resolve<Value>(_ dependency: Dependency<Value>) async throws -> Value {
        guard let dependencies else {
            throw DependencyError.unavailable(dependency.name, "this TaskContext was not made by a worker or TaskRunner")
        }
        return try await DependencyResolver(context: self, call: dependencies.call, worker: dependencies.worker, chain: [])
            .resolve(dependency)
    }
}
