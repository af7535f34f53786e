import QTasks

extension Dependency where Value == any StateStore {
    /// A worker-scoped dependency on a store that is already open: for tests
    /// (a ``MemoryStateStore`` to inspect afterwards), for a store shared
    /// with code outside the worker, and for a program that uses one backend
    /// module only. To name the backend by URL
    /// (`.stateStore(url: "sqlite:///var/lib/shop/state.db")`), import
    /// `QTasksStateStores`, which knows every backend.
    ///
    /// - Parameters:
    ///   - store: the store every task of the worker gets.
    ///   - closesAtShutdown: close `store` at the worker's graceful shutdown
    ///     (default true); pass false when the caller closes it.
    ///   - name: the dependency's name in errors and logs.
    /// - Returns: a new dependency; declare it once and share it.
    public static func stateStore(
        _ store: any StateStore,
        closesAtShutdown: Bool = true,
        name: String = "state store"
    ) -> Dependency<any StateStore> {
        Dependency(name, scope: .worker) { _ in
            closesAtShutdown ? .value(store, teardown: { store, _ in await store.close() }) : .value(store)
        }
    }
}
