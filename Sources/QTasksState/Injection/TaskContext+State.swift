import QTasks

extension TaskContext {
    /// A handle on one state in the worker's State backend: the Swift
    /// spelling of QTasks' `async def step1(state: MyState)`.
    ///
    /// ```swift
    /// struct MyState: StateNamespace {}
    /// let stateStore: Dependency<any StateStore> = .stateStore(url: stateURL)
    ///
    /// try app.register("step1", parameters: ["user"]) { (context: TaskContext, user: String?) -> String in
    ///     let state = try await context.state(MyState.self, key: user, from: stateStore)
    ///     try await state.set("state", to: "await_phone")
    ///     return "ok"
    /// }
    /// ```
    ///
    /// The namespace comes from the type, so a handler cannot mistype it;
    /// the store is `store`'s worker-wide instance (opened on first use,
    /// closed at worker shutdown).
    ///
    /// - Parameters:
    ///   - namespace: the ``StateNamespace`` type.
    ///   - key: the state's key within the namespace (a user, chat or
    ///     workflow id), or nil for the namespace's one state.
    ///   - store: the worker's State backend, from
    ///     ``QTasks/Dependency/stateStore(_:closesAtShutdown:name:)``, or
    ///     `.stateStore(url:)` from `QTasksStateStores`.
    /// - Returns: a ``State`` handle whose writes apply `Namespace.timeToLive`.
    /// - Throws: ``StateError`` `.invalidArgument` for an empty key or a bad
    ///   namespace; `DependencyError` (module `QTasks`) when the store cannot be
    ///   opened (`.factoryFailed`, its `underlyingError` a ``StateError``) or
    ///   this context was not made by a worker (`.unavailable`).
    public func state<Namespace: StateNamespace>(
        _ namespace: Namespace.Type, key: String? = nil, from store: Dependency<any StateStore>
    ) async throws -> State<Namespace> {
        try StateID(namespace: Namespace.namespace, key: key).validate()
        return State(key: key, store: try await resolve(store))
    }
}

extension DependencyResolver {
    /// ``QTasks/TaskContext/state(_:key:from:)`` for a dependency's factory:
    /// a handle on one state of the worker's State backend.
    ///
    /// - Throws: as ``QTasks/TaskContext/state(_:key:from:)``.
    public func state<Namespace: StateNamespace>(
        _ namespace: Namespace.Type, key: String? = nil, from store: Dependency<any StateStore>
    ) async throws -> State<Namespace> {
        try StateID(namespace: Namespace.namespace, key: key).validate()
        return State(key: key, store: try await resolve(store))
    }
}
