import Foundation
import QTasksState

/// Where an SQLite State backend is: the parsed `sqlite://` URL. Package
/// access: `QTasksStateStores` parses URLs of every scheme with it.
package struct SQLiteLocation: Equatable, Sendable {
    /// The database file's absolute path.
    package var path: String
    package var synchronous: SQLiteStateStore.Synchronous

    /// Parses `sqlite:///absolute/path.db` or `sqlite://relative/path.db`
    /// (relative to the current directory), with an optional
    /// `?synchronous=normal|full`.
    ///
    /// - Throws: `invalidURL`, with the URL redacted.
    package init(parsing url: String) throws(StateError) {
        let redacted = StateStores.redactedURL(url)
        guard let separator = url.range(of: "://"), url[..<separator.lowerBound].lowercased() == "sqlite" else {
            throw StateError(.invalidURL, "'\(redacted)' is not an sqlite:// URL")
        }
        let rest = url[separator.upperBound...]
        var pathPart = rest
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
        self.path = absolute
        self.synchronous = synchronous
    }
}

