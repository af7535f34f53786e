import QTasks

/// A State backend: maps each state (``StateID``) to a document, a map of
/// field names to JSON values.
///
/// Implementations: ``MemoryStateStore`` (`memory://`, in this module),
/// `SQLiteStateStore` (`sqlite:///path/state.db`, module `QTasksStateSQLite`),
/// `RedisStateStore` (`redis://host:6379/0`, module `QTasksStateRedis`);
/// `StateStores.open(url:configuration:)` (module `QTasksStateStores`) picks
/// one by URL. Every one of them
/// passes the same contract tests. Most code uses a handle (``State``,
/// ``AnyState``) rather than a store.
///
/// Semantics shared by all backends:
/// - A state that has no fields does not exist: reading it gives `nil` / `[:]`;
///   deleting its last field or clearing it removes it, time-to-live included.
/// - Every write is atomic: ``update(_:in:ttl:)`` merges all its fields or none,
///   and ``modify(_:ttl:_:)`` is an atomic read-modify-write, so concurrent
///   writers (tasks, worker processes, hosts sharing the backend) never lose
///   an update.
/// - Time-to-live: a write with `ttl` makes the whole state expire `ttl` after
///   that write (Redis `PEXPIRE` semantics, millisecond resolution, rounded
///   up); a write with `ttl: nil` keeps the state's current expiry, if any.
///   ``delete(_:in:)`` keeps it too. An expired state reads as empty, and the
///   next write starts from an empty document.
/// - Values are stored as compact JSON text, non-ASCII characters as UTF-8
///   (never `\u` escapes). Non-finite doubles are rejected.
///
/// Errors are ``StateError``s.
public protocol StateStore: Sendable {
    /// The value of one field of a state.
    ///
    /// - Returns: the value, or nil when the state (or the field) does not exist
    ///   or has expired.
    /// - Throws: ``StateError``.
    func get(_ field: String, in state: StateID) async throws -> JSONValue?

    /// Every field of a state.
    ///
    /// - Returns: the document, empty when the state does not exist or has
    ///   expired.
    /// - Throws: ``StateError``.
    func getAll(in state: StateID) async throws -> [String: JSONValue]

    /// Sets several fields at once, atomically, keeping the other fields.
    ///
    /// Always a write, even when no value changes (so `ttl` is applied). An
    /// empty `fields` does nothing (and leaves the expiry alone).
    ///
    /// - Parameters:
    ///   - fields: the fields to set.
    ///   - state: the state.
    ///   - ttl: when given, the state expires this long after the write; nil
    ///     keeps the current expiry.
    /// - Throws: ``StateError``.
    func update(_ fields: [String: JSONValue], in state: StateID, ttl: Duration?) async throws

    /// Removes one field; removing the last one removes the state. Removing
    /// a field that is not there is not an error.
    ///
    /// - Throws: ``StateError``.
    func delete(_ field: String, in state: StateID) async throws

    /// Removes the state: every field and its expiry.
    ///
    /// - Throws: ``StateError``.
    func clear(_ state: StateID) async throws

    /// Atomic read-modify-write: `body` gets the current document (empty when
    /// the state does not exist or has expired) and changes it in place; the
    /// result is written back only if it differs, as one atomic write that
    /// sees no concurrent change in between.
    ///
    /// How: memory, under the actor's isolation; SQLite, inside one
    /// `BEGIN IMMEDIATE` transaction (other processes wait for the write lock,
    /// up to the busy timeout), which may also hold the store's other writes
    /// waiting at that moment (group commit, each applied in order); Redis, an optimistic `WATCH`/`HGETALL`, then
    /// `MULTI`/`HDEL`/`HSET`/`PEXPIRE`/`EXEC`, retried from the read when
    /// another client changed the state in between.
    ///
    /// `body` may therefore run more than once (Redis), and runs on a thread
    /// of the backend's: keep it short and free of other side effects. If it
    /// throws, nothing is written and its error is rethrown unchanged.
    ///
    /// - Parameters:
    ///   - state: the state.
    ///   - ttl: when given and the document changed, the state expires this
    ///     long after the write; nil keeps the current expiry.
    ///   - body: changes the document; its result is returned.
    /// - Returns: what `body` returned (from its last, successful run).
    /// - Throws: ``StateError`` (``StateError/Code-swift.struct/conflict`` when
    ///   Redis attempts ran out), or `body`'s error.
    func modify<T: Sendable>(
        _ state: StateID, ttl: Duration?, _ body: @escaping @Sendable (inout [String: JSONValue]) throws -> T
    ) async throws -> T

    /// The namespaces that hold at least one live (not expired) state, for
    /// tools that browse a store (the dashboard, `qtasks state keys`).
    ///
    /// Read-only and not a snapshot: states written or expiring during the
    /// call may or may not be listed. Each namespace is listed once.
    ///
    /// How: memory, under the actor's isolation; SQLite, one `SELECT DISTINCT`
    /// on the primary key; Redis, a full `SCAN` with `MATCH qtasks:state:*`
    /// (never `KEYS`), whose cost grows with the whole database, not with
    /// `limit`.
    ///
    /// - Parameter limit: the most namespaces to return (≥ 0). To know
    ///   whether the list was cut, ask for one more than you show: the list
    ///   was truncated if it has `limit + 1` entries.
    /// - Returns: at most `limit` namespaces, the first ones in the order of
    ///   their UTF-8 bytes (Unicode code-point order, SQLite's `BINARY`
    ///   collation), the same on every backend.
    /// - Throws: ``StateError``: `invalidArgument` for a negative `limit`,
    ///   `unsupported` from a store that does not implement listing (the
    ///   default implementation), else as reads.
    func namespaces(limit: Int) async throws -> [String]

    /// The keys of the live (not expired) states of `namespace`.
    ///
    /// A namespace's one state without key (`StateID(namespace:)`) is listed
    /// as `nil`, before every key; so each element can be passed straight to
    /// `StateID(namespace: namespace, key: element)`. Read-only and not a
    /// snapshot, as ``namespaces(limit:)``.
    ///
    /// How: memory, under the actor's isolation; SQLite, one `SELECT` on the
    /// primary key; Redis, `EXISTS qtasks:state:<namespace>` and a full
    /// `SCAN` with `MATCH qtasks:state:<namespace>:*` (glob characters of the
    /// namespace escaped; never `KEYS`).
    ///
    /// - Parameters:
    ///   - namespace: a valid namespace (not empty, no `:`).
    ///   - limit: the most keys to return (≥ 0). As for namespaces, ask for
    ///     one more than you show: `limit + 1` results mean it was truncated.
    /// - Returns: at most `limit` keys: `nil` first when the keyless state
    ///   exists, then keys in the order of their UTF-8 bytes.
    /// - Throws: ``StateError``: `invalidArgument` for a bad namespace or a
    ///   negative `limit`, `unsupported` from a store that does not implement
    ///   listing, else as reads.
    func keys(in namespace: String, limit: Int) async throws -> [String?]

    /// Releases the backend's resources (file handles, connections). Later
    /// operations throw ``StateError/Code-swift.struct/closed``. Writes that
    /// returned before are kept (SQLite and Redis). Closing twice is harmless.
    func close() async
}

extension StateStore {
    /// The default for stores written outside this package: throws
    /// ``StateError/Code-swift.struct/unsupported``, so that such stores
    /// still compile. The stores of this package implement it.
    public func namespaces(limit: Int) async throws -> [String] {
        throw StateError(.unsupported, "\(Self.self) cannot list its namespaces (namespaces(limit:) not implemented)")
    }

    /// The default for stores written outside this package: throws
    /// ``StateError/Code-swift.struct/unsupported``, so that such stores
    /// still compile. The stores of this package implement it.
    public func keys(in namespace: String, limit: Int) async throws -> [String?] {
        throw StateError(
            .unsupported, "\(Self.self) cannot list the keys of namespace '\(namespace)' (keys(in:limit:) not implemented)")
    }

    /// Sets one field, keeping the others: ``update(_:in:ttl:)`` with one field.
    ///
    /// - Throws: ``StateError``.
    public func set(_ field: String, to value: JSONValue, in state: StateID, ttl: Duration? = nil) async throws {
        try await update([field: value], in: state, ttl: ttl)
    }

    /// ``update(_:in:ttl:)`` keeping the current expiry.
    public func update(_ fields: [String: JSONValue], in state: StateID) async throws {
        try await update(fields, in: state, ttl: nil)
    }

    /// ``modify(_:ttl:_:)`` keeping the current expiry.
    public func modify<T: Sendable>(
        _ state: StateID, _ body: @escaping @Sendable (inout [String: JSONValue]) throws -> T
    ) async throws -> T {
        try await modify(state, ttl: nil, body)
    }
}
