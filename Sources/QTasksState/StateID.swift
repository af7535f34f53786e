/// Which state: a namespace plus an optional key.
///
/// The namespace groups the states of one kind of workflow (derived from a
/// Swift type by ``State``: `RegistrationState`); the key tells apart its
/// instances (a user, chat or workflow id). A state without a key is the one
/// state of its namespace.
///
/// Rules, checked by every store (violations throw
/// ``StateError/Code-swift.struct/invalidArgument``): the namespace is not
/// empty and contains no `:` (Redis key names are built as
/// `qtasks:state:<namespace>:<key>`, so a `:` could make two states share a
/// key); the key, when present, is not empty (a state without key is written
/// `nil`, not `""`). Keys may contain any other character, `:` included.
public struct StateID: Hashable, Sendable, CustomStringConvertible {
    /// The namespace, for example `"RegistrationState"`.
    public var namespace: String
    /// The key within the namespace, for example a user id; nil for the one
    /// state of the namespace.
    public var key: String?

    /// Creates a state identifier. See the type's rules.
    public init(namespace: String, key: String? = nil) {
        self.namespace = namespace
        self.key = key
    }

    /// `namespace/key`, or just `namespace` without a key.
    public var description: String {
        key.map { "\(namespace)/\($0)" } ?? namespace
    }

    /// Throws ``StateError/Code-swift.struct/invalidArgument`` unless the
    /// identifier follows the rules.
    public func validate() throws(StateError) {
        if namespace.isEmpty {
            throw StateError(.invalidArgument, "a state namespace must not be empty")
        }
        if namespace.contains(":") {
            throw StateError(.invalidArgument, "state namespace '\(namespace)' must not contain ':'")
        }
        if let key, key.isEmpty {
            throw StateError(
                .invalidArgument, "state key of namespace '\(namespace)' must not be empty (use nil for no key)")
        }
    }
}
