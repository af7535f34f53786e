/// The rules every backend's listing (``StateStore/namespaces(limit:)``,
/// ``StateStore/keys(in:limit:)``) shares: argument checks and one order.
///
/// Package access: the SQLite and Redis backends, in modules of their own,
/// list with the same rules as the memory backend.
package enum StateListing {
    /// Throws `invalidArgument` for a negative `limit`.
    package static func check(limit: Int) throws(StateError) {
        if limit < 0 {
            throw StateError(.invalidArgument, "a listing limit must not be negative (got \(limit))")
        }
    }

    /// Throws `invalidArgument` for a negative `limit` or a namespace that is
    /// not valid (``StateID/validate()``).
    package static func check(namespace: String, limit: Int) throws(StateError) {
        try StateID(namespace: namespace).validate()
        try check(limit: limit)
    }

    /// The listing order: by UTF-8 bytes (code points), as SQLite's `BINARY`
    /// collation; unlike `String.<`, it never equates two different byte
    /// sequences, so every backend gives the same order.
    package static func precedes(_ a: String, _ b: String) -> Bool {
        a.utf8.lexicographicallyPrecedes(b.utf8)
    }

    /// The first `limit` of `names` in listing order.
    package static func first(_ limit: Int, of names: some Sequence<String>) -> [String] {
        var collector = Collector(limit: limit)
        for name in names { collector.add(name) }
        return collector.result
    }

    /// Keeps the first `limit` distinct names in listing order out of a
    /// stream of any length (with duplicates, as `SCAN` gives), in memory
    /// proportional to `limit`, not to the stream.
    package struct Collector {
        private let limit: Int
        /// By UTF-8 bytes: `Set<String>` would merge canonically equivalent
        /// names that the backends store apart.
        private var names: [[UInt8]: String] = [:]

        package init(limit: Int) { self.limit = limit }

        package mutating func add(_ name: String) {
            guard limit > 0 else { return }
            names[Array(name.utf8)] = name
            // Trim now and then (not on every insert): amortized cheap.
            if names.count >= 2 * limit + 64 {
                names = Dictionary(uniqueKeysWithValues: sorted().prefix(limit).map { (Array($0.utf8), $0) })
            }
        }

        private func sorted() -> [String] { names.values.sorted(by: StateListing.precedes) }

        /// The first `limit` names collected, in listing order.
        package var result: [String] { Array(sorted().prefix(limit)) }
    }
}
