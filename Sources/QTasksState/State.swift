/// A handle on one state whose namespace is a Swift type: what a task
/// handler receives, like QTasks' `state: MyState` parameter.
///
/// ```swift
/// enum RegistrationState: StateNamespace {}
///
/// let state = State<RegistrationState>(key: "user-42", store: store)
/// try await state.set("state", to: "await_phone")
/// try await state.update(["step": 1, "prompt": "Введите телефон"])
/// ```
///
/// A value type holding the store, the key and the time-to-live: cheap to
/// create per task call. Operations are ``StateHandle``'s.
public struct State<Namespace: StateNamespace>: StateHandle {
    public let store: any StateStore
    /// The key within the namespace (a user, chat or workflow id); nil for
    /// the namespace's one state.
    public var key: String?
    public var ttl: Duration?

    /// Creates a handle.
    ///
    /// - Parameters:
    ///   - key: the key within `Namespace`, or nil.
    ///   - store: the backend.
    ///   - ttl: applied on every write; default `Namespace.timeToLive`.
    public init(key: String? = nil, store: any StateStore, ttl: Duration? = Namespace.timeToLive) {
        self.store = store
        self.key = key
        self.ttl = ttl
    }

    /// `Namespace.namespace` plus ``key``.
    public var id: StateID { StateID(namespace: Namespace.namespace, key: key) }
}
