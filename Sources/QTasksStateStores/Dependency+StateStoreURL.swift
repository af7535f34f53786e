import QTasks
import QTasksState

extension Dependency where Value == any StateStore {
    /// A worker-scoped dependency on the State backend at `url`: what task
    /// handlers resolve to get their State (`TaskContext.state(_:key:from:)`).
    ///
    /// ```swift
    /// let stateStore: Dependency<any StateStore> = .stateStore(url: "sqlite:///var/lib/shop/state.db")
    ///
    /// try app.register("step1") { (context: TaskContext) in
    ///     let state = try await context.state(Registration.self, from: stateStore)
    ///     try await state.set("state", to: "await_phone")
    /// }
    /// ```
    ///
    /// The backend is opened by the first task that asks for it (once, even
    /// when many ask at the same moment), shared by every task of the worker,
    /// and closed at the worker's graceful shutdown, after its last task.
    /// Opening on first use keeps a worker whose other tasks need no State
    /// running while the backend is down: a task that asks then fails with
    /// `DependencyError` `.factoryFailed` naming `name` and carrying
    /// the `StateError` (`unavailable` for an unreachable Redis); a failed
    /// open is not cached, so the next task tries again and the worker
    /// recovers by itself. Check the URL's syntax at startup with
    /// `StateStores.validate(url:)`.
    ///
    /// - Parameters:
    ///   - url: the backend, as `StateStores.open(url:configuration:)` takes it.
    ///   - configuration: timeouts and retry limits.
    ///   - name: the dependency's name in errors and logs.
    /// - Returns: a new dependency; declare it once and share it (dependencies
    ///   are told apart by identity).
    public static func stateStore(
        url: String,
        configuration: StateStoreConfiguration = StateStoreConfiguration(),
        name: String = "state store"
    ) -> Dependency<any StateStore> {
        Dependency(name, scope: .worker) { _ in
            let store = try await StateStores.open(url: url, configuration: configuration)
            return .value(store, teardown: { store, _ in await store.close() })
        }
    }
}
