import Foundation

/// A parsed backend URL.
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
        let rest = String(url[separator.upperBound...])
        switch scheme {
        case "memory":
            guard rest.isEmpty || rest == "/" else {
                throw StateError(.invalidURL, "'\(redacted)': memory:// takes no host, path or options")
            }
            self = .memory
        case "sqlite":
            self = try Self.parseSQLite(rest, redacted: redacted)
        case "redis":
            self = .redis(try RedisEndpoint(parsing: url, redacted: redacted))
        case "rediss":
            throw StateError(
                .invalidURL, "'\(redacted)': TLS (rediss://) is not supported; use redis:// on a trusted network")
        default:
            throw StateError(
                .invalidURL,
                "'\(redacted)': unknown State backend scheme '\(scheme)'; expected memory, sqlite or redis")
        }
    }

    private static func parseSQLite(_ rest: String, redacted: String) throws(StateError) -> StateStoreURL {
        var pathPart = Substring(rest)
        var query: Substring = ""
        if let mark = rest.firstIndex(of: "?") {
            pathPart = rest[..<mark]
            query = rest[rest.index(after: mark)...]
        }
        guard let path = pathPart.removingPercentEncoding, !path.isEmpty, path != "/" else {
            throw StateError(
                .invalidURL, "'\(redacted)': no database file; write sqlite:///absolute/path/state.db")
        }
        var synchronous = SQLiteStateStore.Synchronous.normal
        for item in query.split(separator: "&") where !item.isEmpty {
            let pair = item.split(separator: "=", maxSplits: 1).map(String.init)
            switch (pair.first, pair.count == 2 ? pair[1].lowercased() : nil) {
            case ("synchronous", "normal"?): synchronous = .normal
            case ("synchronous", "full"?): synchronous = .full
            default:
                throw StateError(
                    .invalidURL, "'\(redacted)': unknown SQLite option '\(item)'; known: synchronous=normal|full")
            }
        }
        // sqlite:///abs/path → "/abs/path"; sqlite://rel/path → "rel/path",
        // relative to the current directory.
        let absolute = path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path
        return .sqlite(path: absolute, synchronous: synchronous)
    }
}

/// Where a Redis server is, and how to log in.
struct RedisEndpoint: Equatable, Sendable {
    var host: String
    var port: Int
    var database: Int
    var username: String?
    var password: String?
    /// The URL with the password replaced by `***`, for messages.
    var redactedURL: String

    init(parsing url: String, redacted: String) throws(StateError) {
        guard let components = URLComponents(string: url), let host = components.host, !host.isEmpty else {
            throw StateError(
                .invalidURL, "'\(redacted)' is not a valid Redis URL; expected redis://[:password@]host[:port][/db]")
        }
        self.host = host.hasPrefix("[") && host.hasSuffix("]") ? String(host.dropFirst().dropLast()) : host
        let port = components.port ?? 6379
        guard (1...65535).contains(port) else {
            throw StateError(.invalidURL, "'\(redacted)': port \(port) is out of range")
        }
        self.port = port
        let path = components.path
        if path.isEmpty || path == "/" {
            database = 0
        } else if let number = Int(path.dropFirst()), number >= 0, path.hasPrefix("/") {
            database = number
        } else {
            throw StateError(.invalidURL, "'\(redacted)': the path must be a database number such as /0, got '\(path)'")
        }
        if let items = components.queryItems, !items.isEmpty {
            throw StateError(.invalidURL, "'\(redacted)': Redis URLs take no options (got '\(components.query ?? "")')")
        }
        let user = components.user.flatMap { $0.isEmpty ? nil : $0 }
        password = components.password.flatMap { $0.isEmpty ? nil : $0 }
        if user != nil && password == nil {
            throw StateError(
                .invalidURL,
                "'\(redacted)': a user name needs a password: redis://user:PASSWORD@host, or redis://:PASSWORD@host")
        }
        username = user
        redactedURL = redacted
    }
}
