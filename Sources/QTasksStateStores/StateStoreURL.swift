import QTasksState
import QTasksStateRedis
import QTasksStateSQLite

/// A parsed backend URL: the scheme picks the backend module, which parses
/// the rest (each backend owns its URL syntax, so `SQLiteStateStore.open(url:)`
/// and `RedisStateStore.open(url:)` accept exactly what this accepts).
enum StateStoreURL: Equatable {
    case memory
    case sqlite(path: String, synchronous: SQLiteStateStore.Synchronous)
    case redis(RedisEndpoint)

    /// Parses `memory://`, `sqlite:///absolute/path.db`, `sqlite://relative/path.db`,
    /// `redis://[[user]:password@]host[:port][/db]`.
    ///
    /// - Throws: `invalidURL`, with the URL redacted.
    init(parsing url: String) throws(StateError) {
        let redacted = StateStores.redactedURL(url)
        guard let separator = url.range(of: "://") else {
            throw StateError(
                .invalidURL,
                "'\(redacted)' is not a State backend URL; expected memory://, sqlite:///path/state.db or redis://host:6379/0"
            )
        }
        let scheme = url[..<separator.lowerBound].lowercased()
        let rest = url[separator.upperBound...]
        switch scheme {
        case "memory":
            guard rest.isEmpty || rest == "/" else {
                throw StateError(.invalidURL, "'\(redacted)': memory:// takes no host, path or options")
            }
            self = .memory
        case "sqlite":
            let location = try SQLiteLocation(parsing: url)
            self = .sqlite(path: location.path, synchronous: location.synchronous)
        case "redis", "rediss":
            // rediss:// is refused there, with a message about TLS.
            self = .redis(try RedisEndpoint(parsing: url))
        default:
            throw StateError(
                .invalidURL,
                "'\(redacted)': unknown State backend scheme '\(scheme)'; expected memory, sqlite or redis")
        }
    }
}
