/// Opens State backends by URL.
public enum StateStores {
    /// Opens the backend a URL names.
    ///
    /// | URL | backend |
    /// | --- | --- |
    /// | `memory://` | a new, empty ``MemoryStateStore`` (this process only) |
    /// | `sqlite:///var/lib/app/state.db` | ``SQLiteStateStore`` on that absolute path |
    /// | `sqlite://state/state.db` | the same, relative to the current directory |
    /// | `sqlite:///path.db?synchronous=full` | fsync on every commit (default `normal`) |
    /// | `redis://host:6379/0` | ``RedisStateStore``, database 0 (port default 6379, database default 0) |
    /// | `redis://:password@host:6379/0` | with `AUTH password` |
    /// | `redis://user:password@host:6379/0` | with `AUTH user password` (Redis 6 ACL) |
    ///
    /// Percent-encode special characters in paths and passwords. The SQLite
    /// file is created if missing (its directory must exist); a Redis
    /// connection is made right away, so that a wrong host or password fails
    /// here.
    ///
    /// - Parameters:
    ///   - url: the backend URL.
    ///   - configuration: timeouts and retry limits.
    /// - Returns: the open store.
    /// - Throws: ``StateError`` with ``StateError/Code-swift.struct/invalidURL``
    ///   for a malformed URL or unknown scheme,
    ///   ``StateError/Code-swift.struct/unavailable`` when the backend cannot
    ///   be reached or opened. Messages show the URL with its password
    ///   replaced by `***`.
    public static func open(
        url: String, configuration: StateStoreConfiguration = StateStoreConfiguration()
    ) async throws -> any StateStore {
        switch try StateStoreURL(parsing: url) {
        case .memory:
            return MemoryStateStore()
        case .sqlite(let path, let synchronous):
            return try await SQLiteStateStore.open(path: path, synchronous: synchronous, configuration: configuration)
        case .redis(let endpoint):
            return try await RedisStateStore.open(endpoint: endpoint, configuration: configuration)
        }
    }

    /// `url` with the password (what follows `:` in the user-info part)
    /// replaced by `***`, for logs and messages: `redis://:***@host:6379/0`.
    /// User info without a `:` is replaced whole. Other URLs come back
    /// unchanged.
    public static func redactedURL(_ url: String) -> String {
        guard let separator = url.range(of: "://") else { return url }
        let rest = url[separator.upperBound...]
        // No authority (sqlite:///abs/path) or no user info: nothing to hide.
        guard !rest.hasPrefix("/"), let at = rest.lastIndex(of: "@") else { return url }
        let userInfo = rest[..<at]
        let redactedUserInfo: String
        if let colon = userInfo.firstIndex(of: ":") {
            redactedUserInfo = userInfo[..<colon] + ":***"
        } else {
            redactedUserInfo = "***"
        }
        return url[..<separator.upperBound] + redactedUserInfo + rest[at...]
    }
}
