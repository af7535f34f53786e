import QTasks
import QTasksResultsRedis
import QTasksResultsSQLite
import QTasksState
import QTasksStateRedis
import QTasksStateSQLite

/// Opening a result store by URL: the one module that knows every backend.
///
/// | URL | backend |
/// | --- | --- |
/// | `sqlite:///var/lib/app/results.db` | `SQLiteResultStore` on that absolute path (the default for one host) |
/// | `sqlite://results/results.db` | the same, relative to the current directory |
/// | `redis://host:6379/0` | `RedisResultStore`, database 0, Python QTasks' layout (a fleet) |
/// | `redis://:password@host:6379/0` | with `AUTH password` (`user:password@` for a Redis 6 ACL user) |
/// | `memory://` | a new `MemoryResultStore` (this process only; tests) |
///
/// Workers, the `qtasks` command and the scheduler read the URL from
/// `--result-store URL`, `QTASKS_RESULT_STORE`, or a file
/// (`--result-store-file`, `QTASKS_RESULT_STORE_FILE`; docs/security.md).
public enum ResultStores {
    /// The environment variable with the result store's URL.
    public static let environmentVariable = "QTASKS_RESULT_STORE"
    /// The environment variable naming a file that holds the URL.
    public static let fileEnvironmentVariable = "QTASKS_RESULT_STORE_FILE"

    /// `url` with its password replaced by `***`.
    public static func redactedURL(_ url: String) -> String {
        StateStores.redactedURL(url)
    }

    /// Checks a URL's syntax without connecting.
    ///
    /// - Throws: ``ResultStoreError`` `.invalidURL`, saying what is wrong
    ///   (password redacted).
    public static func validate(url: String) throws(ResultStoreError) {
        _ = try Location(parsing: url)
    }

    /// The database file of an `sqlite://` URL (absolute), nil for other
    /// backends: for readers that must not create a store where there was
    /// none (a mistyped path).
    ///
    /// - Throws: ``ResultStoreError`` `.invalidURL`.
    public static func sqliteFile(of url: String) throws(ResultStoreError) -> String? {
        if case .sqlite(let path) = try Location(parsing: url) { return path }
        return nil
    }

    /// Opens the backend a URL names. The SQLite file is created if missing
    /// (its directory must exist); a Redis connection is made at once, so a
    /// wrong host or password fails here.
    ///
    /// - Throws: ``ResultStoreError`` `.invalidURL` or `.unavailable`.
    public static func open(
        url: String, configuration: ResultStoreConfiguration = ResultStoreConfiguration()
    ) async throws -> any ResultStore {
        switch try Location(parsing: url) {
        case .memory:
            return MemoryResultStore(configuration: configuration)
        case .sqlite(let path):
            return try await SQLiteResultStore.open(path: path, configuration: configuration)
        case .redis:
            return try await RedisResultStore.open(url: url, configuration: configuration)
        }
    }

    enum Location {
        case memory
        case sqlite(path: String)
        case redis

        init(parsing url: String) throws(ResultStoreError) {
            let redacted = ResultStores.redactedURL(url)
            guard let separator = url.range(of: "://") else {
                throw ResultStoreError(
                    .invalidURL,
                    "'\(redacted)' is not a result store URL; expected sqlite:///path/results.db or redis://host:6379/0")
            }
            let scheme = url[..<separator.lowerBound].lowercased()
            let rest = url[separator.upperBound...]
            do {
                switch scheme {
                case "memory":
                    guard rest.isEmpty || rest == "/" else {
                        throw ResultStoreError(.invalidURL, "'\(redacted)': memory:// takes no host, path or options")
                    }
                    self = .memory
                case "sqlite":
                    let location = try SQLiteLocation(parsing: url)
                    if location.synchronous != .normal {
                        throw ResultStoreError(.invalidURL, "'\(redacted)': result stores take no SQLite options")
                    }
                    self = .sqlite(path: location.path)
                case "redis", "rediss":
                    _ = try RedisEndpoint(parsing: url)
                    self = .redis
                default:
                    throw ResultStoreError(
                        .invalidURL, "'\(redacted)': unknown result store scheme '\(scheme)'; expected sqlite or redis")
                }
            } catch let error as StateError {
                throw ResultStoreError(.invalidURL, error.message)
            } catch let error as ResultStoreError {
                throw error
            } catch {
                throw ResultStoreError(.invalidURL, "'\(redacted)': \(error)")
            }
        }
    }
}
