/// A handle on one state whose namespace is a run-time string: for tools
/// (the `qtasks state` command, admin scripts) that do not know the Swift
/// type. Operations are ``StateHandle``'s.
///
/// `AnyState(namespace: "RegistrationState", key: "42", store: store)` reads
/// and writes the same state as `State<RegistrationState>(key: "42", store: store)`.
public struct AnyState: StateHandle {
    public let store: any StateStore
    public var id: StateID
    public var ttl: Duration?

    /// Creates a handle.
    ///
    /// - Parameters:
    ///   - namespace: the namespace (not empty, no `:`; checked on use).
    ///   - key: the key within it, or nil.
    ///   - store: the backend.
    ///   - ttl: applied on every write; nil keeps the current expiry.
    public init(namespace: String, key: String? = nil, store: any StateStore, ttl: Duration? = nil) {
        self.store = store
        self.id = StateID(namespace: namespace, key: key)
        self.ttl = ttl
    }

    /// A handle on the same state as `state`.
    public init(_ state: some StateHandle) {
        self.init(namespace: state.id.namespace, key: state.id.key, store: state.store, ttl: state.ttl)
    }
}
