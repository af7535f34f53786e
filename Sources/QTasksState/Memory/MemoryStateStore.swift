import QTasks

/// A State backend in this process's memory (`memory://`): for tests and
/// single-process tools. Nothing is shared with other processes or survives
/// a restart.
///
/// An actor: every operation, ``modify(_:ttl:_:)`` included, runs alone
/// under its isolation. Expiry uses `ContinuousClock`; expired states are
/// dropped when touched, and all of them every 256 writes.
public actor MemoryStateStore: StateStore, CustomStringConvertible {
    private struct Entry {
        var document: [String: JSONValue]
        var expiresAt: ContinuousClock.Instant?
    }

    private var entries: [StateID: Entry] = [:]
    private var writesSinceSweep = 0
    private var isClosed = false

    /// Creates an empty store.
    public init() {}

    public nonisolated var description: String { "MemoryStateStore" }

    public func get(_ field: String, in state: StateID) throws -> JSONValue? {
        try live(state)?.document[field]
    }

    public func getAll(in state: StateID) throws -> [String: JSONValue] {
        try live(state)?.document ?? [:]
    }

    public func update(_ fields: [String: JSONValue], in state: StateID, ttl: Duration?) throws {
        guard !fields.isEmpty else {
            try state.validate()
            return
        }
        try write(state, ttl: ttl, always: true) { document in document.merge(fields) { _, new in new } }
    }

    public func delete(_ field: String, in state: StateID) throws {
        try write(state, ttl: nil, always: false) { document in document[field] = nil }
    }

    public func clear(_ state: StateID) throws {
        try checkOpen()
        try state.validate()
        entries[state] = nil
    }

    public func modify<T: Sendable>(
        _ state: StateID, ttl: Duration?, _ body: @escaping @Sendable (inout [String: JSONValue]) throws -> T
    ) throws -> T {
        try write(state, ttl: ttl, always: false, body)
    }

    public func namespaces(limit: Int) throws -> [String] {
        try checkOpen()
        try StateListing.check(limit: limit)
        let now = ContinuousClock.now
        return StateListing.first(
            limit, of: entries.lazy.filter { _, entry in entry.expiresAt.map { $0 > now } ?? true }.map(\.key.namespace))
    }

    public func keys(in namespace: String, limit: Int) throws -> [String?] {
        try checkOpen()
        try StateListing.check(namespace: namespace, limit: limit)
        let now = ContinuousClock.now
        var hasKeyless = false
        var keys: [String] = []
        for (state, entry) in entries where state.namespace == namespace {
            if let expiresAt = entry.expiresAt, expiresAt <= now { continue }
            if let key = state.key { keys.append(key) } else { hasKeyless = true }
        }
        let first = (hasKeyless ? [nil] : []) + StateListing.first(limit, of: keys).map(Optional.some)
        return Array(first.prefix(limit))
    }

    public func close() {
        isClosed = true
        entries = [:]
    }

    // MARK: - Internals

    private func checkOpen() throws(StateError) {
        if isClosed { throw StateError(.closed, "the memory State store is closed") }
    }

    /// The entry of `state` unless missing or expired (then dropped).
    private func live(_ state: StateID) throws -> Entry? {
        try checkOpen()
        try state.validate()
        guard let entry = entries[state] else { return nil }
        if let expiresAt = entry.expiresAt, expiresAt <= .now {
            entries[state] = nil
            return nil
        }
        return entry
    }

    /// Runs `change` on the current document and stores the result if it
    /// differs (or `always`, so that an update refreshes the expiry even when
    /// it changes no value): the one write path, so every write has the same
    /// semantics.
    private func write<T>(
        _ state: StateID, ttl: Duration?, always: Bool, _ change: (inout [String: JSONValue]) throws -> T
    ) throws -> T {
        let expiresIn = try ttl.map { ttl throws(StateError) in
            Duration.milliseconds(try TimeToLive.milliseconds(ttl, for: state))
        }
        let current = try live(state)
        var document = current?.document ?? [:]
        let result = try change(&document)
        guard always || document != current?.document ?? [:] else { return result }
        _ = try StateJSON.text(of: document, in: state)  // same rules as the other backends
        if document.isEmpty {
            entries[state] = nil
        } else {
            let expiresAt = expiresIn.map { ContinuousClock.now + $0 } ?? current?.expiresAt
            entries[state] = Entry(document: document, expiresAt: expiresAt)
        }
        sweepOccasionally()
        return result
    }

    private func sweepOccasionally() {
        writesSinceSweep += 1
        guard writesSinceSweep >= 256 else { return }
        writesSinceSweep = 0
        let now = ContinuousClock.now
        entries = entries.filter { _, entry in entry.expiresAt.map { $0 > now } ?? true }
    }
}
