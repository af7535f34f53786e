import Foundation
import QTasksState

/// Where a Redis server is, and how to log in.
///
/// Package access: `QTasksStateStores` parses `redis://` URLs with it.
package struct RedisEndpoint: Equatable, Sendable {
    package var host: String
    package var port: Int
    package var database: Int
    package var username: String?
    package var password: String?
    /// The URL with the password replaced by `***`, for messages.
    package var redactedURL: String

    /// Parses `redis://[[user]:password@]host[:port][/db]`.
    ///
    /// - Throws: `invalidURL`, with the URL redacted: for another scheme,
    ///   `rediss://` (no TLS support) and malformed URLs.
    package init(parsing url: String) throws(StateError) {
        let redacted = StateStores.redactedURL(url)
        let scheme = url.range(of: "://").map { url[..<$0.lowerBound].lowercased() }
        if scheme == "rediss" {
            throw StateError(
                .invalidURL, "'\(redacted)': TLS (rediss://) is not supported; use redis:// on a trusted network")
        }
        guard scheme == "redis" else {
            throw StateError(.invalidURL, "'\(redacted)' is not a redis:// URL")
        }
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
