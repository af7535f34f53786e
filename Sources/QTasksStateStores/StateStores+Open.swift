import QTasksState
import QTasksStateRedis
import QTasksStateSQLite

extension StateStores {
    /// Opens the backend a URL names.
    ///
    /// This is the one place that knows every backend, which is why it is in
    /// `QTasksStateStores` (memory, SQLite and Redis) rather than in
    /// `QTasksState` (memory only, no C library): a program that opens stores
    /// by URL links GRDB and hiredis; one that only uses `MemoryStateStore`
    /// does not.
    ///
    /// | URL | backend |
    /// | --- | --- |
    /// | `memory://` | a new, empty `MemoryStateStore` (this process only) |
    /// | `sqlite:///var/lib/app/state.db` | `SQLiteStateStore` on that absolute path |
    /// | `sqlite://state/state.db` | the same, relative to the current directory |
    /// | `sqlite:///path.db?synchronous=full` | fsync on every commit (default `normal`) |
    /// | `redis://host:6379/0` | `RedisStateStore`, database 0 (port default 6379, database default 0) |
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
    /// - Throws: `StateError` with `StateError.Code.invalidURL`
    ///   for a malformed URL or unknown scheme,
    ///   `StateError.Code.unavailable` when the backend cannot
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
}
