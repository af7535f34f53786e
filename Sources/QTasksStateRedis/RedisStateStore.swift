import Dispatch
import Foundation
import QTasks
import QTasksState

/// A State backend on a Redis server (`redis://host:6379/0`), through the C
/// client hiredis: the backend for a fleet of workers on several hosts.
///
/// Layout: one hash per state, key `qtasks:state:<namespace>` (no key) or
/// `qtasks:state:<namespace>:<key>`, one hash field per State field, its
/// value the field's JSON text. So `redis-cli HGETALL
/// qtasks:state:RegistrationState:42` shows a state as it is.
///
/// Operations: `get` is `HGET`, `getAll` `HGETALL`, `update` one `HSET` with
/// every field (with a time-to-live: `MULTI`, `HSET`, `PEXPIRE`, `EXEC`),
/// `delete` `HDEL`, `clear` `DEL`. Time-to-live is the key's `PEXPIRE`, so
/// Redis itself expires states. ``modify(_:ttl:_:)`` is an optimistic
/// transaction: `WATCH` the key, `HGETALL`, run the closure, then `MULTI`,
/// `HDEL` of removed fields, `HSET` of changed ones, `PEXPIRE`, `EXEC`. If
/// another client wrote the key in between, `EXEC` fails and the round is
/// retried after a random pause under 2 ms, up to
/// `StateStoreConfiguration.maxModifyAttempts` times
/// (then `StateError.Code.conflict`).
///
/// Connection: one connection per store, used by one serial dispatch queue
/// on which every blocking hiredis call runs (never Swift's cooperative
/// pool), so operations of one store run one at a time. Each operation
/// has `StateStoreConfiguration.timeout` in all, counted from the call: its
/// wait for the queue, the connect, every socket read and write and a
/// reconnect come out of it (so a frozen server fails every call within the
/// timeout, never one timeout per step). When the
/// connection breaks the operation fails with
/// `StateError.Code.unavailable` (naming the URL, password
/// redacted, and hiredis' error) and the connection is dropped; the next
/// operation connects again, so the store recovers by itself once Redis is
/// back. An operation that finds a connection which died while idle (a Redis
/// restart) is retried once on a new connection when that is safe: always
/// for `get`, `getAll`, `update`, `delete`, `clear` (they are idempotent),
/// and for `modify` when the failure came before its `EXEC` was sent.
///
/// Durability is the server's: with `appendonly yes` (as `deploy/redis.sh`
/// runs it) and the default `appendfsync everysec`, a write survives a Redis
/// restart, and a power loss costs at most the last second.
public final class RedisStateStore: StateStore, CustomStringConvertible, @unchecked Sendable {
    // @unchecked Sendable: `connection` and `isClosed` are read and written
    // only by blocks running on the serial `queue`; everything else is
    // immutable.
    private let endpoint: RedisEndpoint
    private let configuration: StateStoreConfiguration
    private let queue: DispatchQueue
    private var connection: RedisConnection?
    private var isClosed = false

    private init(endpoint: RedisEndpoint, configuration: StateStoreConfiguration) {
        self.endpoint = endpoint
        self.configuration = configuration
        self.queue = DispatchQueue(label: "QTasksState.Redis \(endpoint.host):\(endpoint.port)")
    }

    /// `RedisStateStore(redis://:***@host:6379/0)`.
    public var description: String { "RedisStateStore(\(endpoint.redactedURL))" }

    /// Opens a store and connects to the server right away.
    ///
    /// - Parameters:
    ///   - url: `redis://[[user]:password@]host[:port][/db]`.
    ///   - configuration: timeouts and the `modify` attempt limit.
    /// - Throws: `StateError.Code.invalidURL` for a URL that is
    ///   not `redis://`, `StateError.Code.unavailable` when the
    ///   server cannot be reached or refuses the password.
    public static func open(
        url: String, configuration: StateStoreConfiguration = StateStoreConfiguration()
    ) async throws -> RedisStateStore {
        try await open(endpoint: RedisEndpoint(parsing: url), configuration: configuration)
    }

    /// Opens a store on an endpoint parsed already (`StateStores.open(url:)`
    /// in `QTasksStateStores`, which parses every backend's URLs).
    package static func open(endpoint: RedisEndpoint, configuration: StateStoreConfiguration) async throws
        -> RedisStateStore
    {
        let store = RedisStateStore(endpoint: endpoint, configuration: configuration)
        try await store.run(doing: "connect to", idempotent: true) { _ in }
        return store
    }

    public func get(_ field: String, in state: StateID) async throws -> JSONValue? {
        try state.validate()
        let key = Self.redisKey(state)
        let reply = try await run(doing: "read state \(state) from", idempotent: true) { connection in
            try self.checked(connection.command(["HGET", key, field]), key: key)
        }
        switch reply {
        case .string(let bytes):
            return try StateJSON.value(from: bytes, what: "field '\(field)' of Redis key \(key)")
        case .nil:
            return nil
        default:
            throw unexpected(reply, to: "HGET", key: key)
        }
    }

    public func getAll(in state: StateID) async throws -> [String: JSONValue] {
        try state.validate()
        let key = Self.redisKey(state)
        let reply = try await run(doing: "read state \(state) from", idempotent: true) { connection in
            try self.checked(connection.command(["HGETALL", key]), key: key)
        }
        return try document(from: reply, key: key)
    }

    public func update(_ fields: [String: JSONValue], in state: StateID, ttl: Duration?) async throws {
        try state.validate()
        guard !fields.isEmpty else { return }
        let key = Self.redisKey(state)
        var hset = ["HSET", key]
        for (field, value) in fields {
            hset += [field, try StateJSON.text(of: value, field: field, in: state)]
        }
        let command = hset
        if let ttl {
            let milliseconds = try TimeToLive.milliseconds(ttl, for: state)
            try await run(doing: "write state \(state) to", idempotent: true) { connection in
                _ = try self.transaction(
                    [command, ["PEXPIRE", key, String(milliseconds)]], on: connection, key: key)
            }
        } else {
            try await run(doing: "write state \(state) to", idempotent: true) { connection in
                _ = try self.checked(connection.command(command, hasEffects: true), key: key)
            }
        }
    }

    public func delete(_ field: String, in state: StateID) async throws {
        try state.validate()
        let key = Self.redisKey(state)
        try await run(doing: "delete a field of state \(state) in", idempotent: true) { connection in
            _ = try self.checked(connection.command(["HDEL", key, field], hasEffects: true), key: key)
        }
    }

    public func clear(_ state: StateID) async throws {
        try state.validate()
        let key = Self.redisKey(state)
        try await run(doing: "clear state \(state) in", idempotent: true) { connection in
            _ = try self.checked(connection.command(["DEL", key], hasEffects: true), key: key)
        }
    }

    public func modify<T: Sendable>(
        _ state: StateID, ttl: Duration?,
        _ body: @escaping @Sendable (inout [String: JSONValue]) throws -> T
    ) async throws -> T {
        try state.validate()
        let key = Self.redisKey(state)
        let milliseconds = try ttl.map { ttl throws(StateError) in
            try TimeToLive.milliseconds(ttl, for: state)
        }
        let maxAttempts = max(1, configuration.maxModifyAttempts)
        return try await run(doing: "modify state \(state) in", idempotent: false) { connection in
            for attempt in 1...maxAttempts {
                if let result = try self.modifyOnce(
                    state, key: key, milliseconds: milliseconds, on: connection, body)
                {
                    return result
                }
                // EXEC aborted: another client wrote the key. Back off a
                // little (this is the store's own queue, not the pool).
                usleep(UInt32.random(in: 0...UInt32(min(attempt, 10) * 200)))
            }
            throw StateError(
                .conflict,
                "state \(state) kept changing under modify: gave up after \(maxAttempts) attempts on \(self.endpoint.redactedURL)"
            )
        }
    }

    public func namespaces(limit: Int) async throws -> [String] {
        try StateListing.check(limit: limit)
        guard limit > 0 else { return [] }
        let prefix = Self.keyPrefix
        return try await run(doing: "list the State namespaces in", idempotent: true) { connection in
            var collector = StateListing.Collector(limit: limit)
            try self.scan(matching: Self.globEscaped(prefix) + "*", on: connection) { key in
                // qtasks:state:<namespace>[:<key>]; namespaces have no ':'.
                let namespace = key.dropFirst(prefix.count).prefix { $0 != ":" }
                if !namespace.isEmpty { collector.add(String(namespace)) }
            }
            return collector.result
        }
    }

    public func keys(in namespace: String, limit: Int) async throws -> [String?] {
        try StateListing.check(namespace: namespace, limit: limit)
        guard limit > 0 else { return [] }
        let keyless = Self.redisKey(StateID(namespace: namespace))
        let prefix = keyless + ":"
        return try await run(doing: "list the keys of State namespace '\(namespace)' in", idempotent: true) {
            connection in
            // EXISTS and SCAN skip keys that have expired.
            let hasKeyless: Bool
            switch try self.checked(connection.command(["EXISTS", keyless]), key: keyless) {
            case .integer(let count): hasKeyless = count > 0
            case let other: throw self.unexpected(other, to: "EXISTS", key: keyless)
            }
            var collector = StateListing.Collector(limit: hasKeyless ? limit - 1 : limit)
            try self.scan(matching: Self.globEscaped(prefix) + "*", on: connection) { key in
                collector.add(String(key.dropFirst(prefix.count)))
            }
            return (hasKeyless ? [nil] : []) + collector.result.map(Optional.some)
        }
    }

    public func close() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            queue.async {
                self.isClosed = true
                self.connection = nil
                continuation.resume()
            }
        }
    }

    // MARK: - Internals

    /// `qtasks:state:`, the start of every State key.
    static let keyPrefix = "qtasks:state:"

    /// `text` as a `SCAN`/`KEYS` glob that matches it literally: `*`, `?`,
    /// `[`, `]` and `\` escaped with a backslash.
    static func globEscaped(_ text: String) -> String {
        var escaped = ""
        for character in text {
            if "*?[]\\".contains(character) { escaped.append("\\") }
            escaped.append(character)
        }
        return escaped
    }

    /// A whole `SCAN` iteration with `MATCH pattern COUNT 1000` (never
    /// `KEYS`, which blocks the server): `found` gets every key that existed
    /// during the whole iteration at least once, maybe more than once.
    private func scan(matching pattern: String, on connection: RedisConnection, _ found: (String) -> Void) throws {
        var cursor = "0"
        repeat {
            let reply = try checked(
                connection.command(["SCAN", cursor, "MATCH", pattern, "COUNT", "1000"]), key: pattern)
            guard case .array(let parts) = reply, parts.count == 2, case .string(let next) = parts[0],
                case .array(let keys) = parts[1]
            else { throw unexpected(reply, to: "SCAN", key: pattern) }
            for key in keys {
                guard case .string(let bytes) = key else { throw unexpected(reply, to: "SCAN", key: pattern) }
                found(String(decoding: bytes, as: UTF8.self))
            }
            cursor = String(decoding: next, as: UTF8.self)
        } while cursor != "0"
    }

    /// `qtasks:state:<namespace>[:<key>]`.
    static func redisKey(_ state: StateID) -> String {
        keyPrefix + state.namespace + (state.key.map { ":" + $0 } ?? "")
    }

    /// One optimistic round of `modify`; nil when `EXEC` was aborted.
    private func modifyOnce<T>(
        _ state: StateID, key: String, milliseconds: Int64?, on connection: RedisConnection,
        _ body: (inout [String: JSONValue]) throws -> T
    ) throws -> T? {
        _ = try checked(connection.command(["WATCH", key]), key: key)
        let result: T
        let commands: [[String]]
        do {
            let current = try self.document(
                from: checked(connection.command(["HGETALL", key]), key: key), key: key)
            var document = current
            result = try body(&document)
            guard document != current else {
                _ = try checked(connection.command(["UNWATCH"]), key: key)
                return result
            }
            commands = try Self.writeCommands(from: current, to: document, key: key, milliseconds: milliseconds, state)
        } catch let failure as RedisConnection.Failure {
            throw failure  // the connection is dropped, WATCH with it
        } catch {
            // The closure threw, or a value cannot be stored: leave the
            // connection without a pending WATCH.
            _ = try? connection.command(["UNWATCH"])
            throw error
        }
        return try transaction(commands, on: connection, key: key) ? result : nil
    }

    /// The commands that turn `current` into `document` (not equal): `DEL`
    /// when it became empty, else `HDEL` of removed fields, `HSET` of changed
    /// ones and `PEXPIRE` when a time-to-live is given.
    private static func writeCommands(
        from current: [String: JSONValue], to document: [String: JSONValue], key: String,
        milliseconds: Int64?, _ state: StateID
    ) throws -> [[String]] {
        if document.isEmpty { return [["DEL", key]] }
        var commands: [[String]] = []
        let removed = current.keys.filter { document[$0] == nil }
        if !removed.isEmpty { commands.append(["HDEL", key] + removed) }
        var hset = ["HSET", key]
        for (field, value) in document where current[field] != value {
            hset += [field, try StateJSON.text(of: value, field: field, in: state)]
        }
        if hset.count > 2 { commands.append(hset) }
        if let milliseconds { commands.append(["PEXPIRE", key, String(milliseconds)]) }
        return commands
    }

    /// Runs `commands` in `MULTI`/`EXEC`, sent in one write.
    ///
    /// - Returns: false when `EXEC` was aborted (a watched key changed).
    private func transaction(_ commands: [[String]], on connection: RedisConnection, key: String)
        throws -> Bool
    {
        let replies = try connection.pipeline([["MULTI"]] + commands + [["EXEC"]], hasEffects: true)
        // An error while queueing (MULTI's OK and the QUEUEDs) makes Redis
        // discard the transaction: EXEC then answers EXECABORT.
        for reply in replies.dropLast() {
            _ = try checked(reply, key: key)
        }
        switch try checked(replies[replies.count - 1], key: key) {
        case .nil:
            return false
        case .array(let results):
            for result in results {
                _ = try checked(result, key: key)
            }
            return true
        case let other:
            throw unexpected(other, to: "EXEC", key: key)
        }
    }

    /// A document from an `HGETALL` reply.
    private func document(from reply: RedisReply, key: String) throws -> [String: JSONValue] {
        guard case .array(let elements) = reply, elements.count % 2 == 0 else {
            throw unexpected(reply, to: "HGETALL", key: key)
        }
        var document: [String: JSONValue] = [:]
        var index = 0
        while index < elements.count {
            guard case .string(let name) = elements[index], case .string(let text) = elements[index + 1]
            else {
                throw unexpected(reply, to: "HGETALL", key: key)
            }
            let field = String(decoding: name, as: UTF8.self)
            document[field] = try StateJSON.value(
                from: text, what: "field '\(field)' of Redis key \(key)")
            index += 2
        }
        return document
    }

    /// `reply`, unless it is an error reply: then the matching `StateError`.
    private func checked(_ reply: RedisReply, key: String) throws(StateError) -> RedisReply {
        guard case .error(let text) = reply else { return reply }
        let server = "Redis at \(endpoint.redactedURL)"
        if text.hasPrefix("WRONGTYPE") {
            throw StateError(
                .corrupted, "Redis key \(key) at \(endpoint.redactedURL) is not a State hash: \(text)")
        }
        for transient in ["LOADING", "BUSY", "MASTERDOWN", "TRYAGAIN", "NOAUTH", "CLUSTERDOWN"]
        where text.hasPrefix(transient) {
            throw StateError(.unavailable, "\(server) is unavailable: \(text)")
        }
        throw StateError(.rejected, "\(server) refused a command on key \(key): \(text)")
    }

    private func unexpected(_ reply: RedisReply, to command: String, key: String) -> StateError {
        StateError(
            .corrupted, "unexpected reply to \(command) \(key) from \(endpoint.redactedURL): \(reply)")
    }

    /// Runs `body` on the store's queue with a live connection (made if
    /// needed), and maps connection failures to `StateError`s.
    ///
    /// - Parameters:
    ///   - doing: what the operation does, for messages ("read state X from").
    ///   - idempotent: whether `body` may run twice; if not, it is retried
    ///     only for failures that happened before it sent anything with
    ///     effects.
    private func run<T: Sendable>(
        doing: String, idempotent: Bool, _ body: @escaping @Sendable (RedisConnection) throws -> T
    ) async throws -> T {
        // The whole call, its wait for the queue included, has the
        // configured timeout (RedisDeadline).
        let deadline = RedisDeadline(timeout: configuration.timeout)
        return try await withCheckedThrowingContinuation { continuation in
            queue.async {
                continuation.resume(
                    with: Result {
                        try withSIGPIPEBlocked {
                            try self.runOnQueue(doing: doing, idempotent: idempotent, deadline: deadline, body)
                        }
                    })
            }
        }
    }

    private func runOnQueue<T>(
        doing: String, idempotent: Bool, deadline: RedisDeadline, _ body: (RedisConnection) throws -> T
    ) throws -> T {
        dispatchPrecondition(condition: .onQueue(queue))
        guard !isClosed else {
            throw StateError(.closed, "cannot \(doing) \(endpoint.redactedURL): the store is closed")
        }
        // Calls queued behind one that hung on a frozen server fail at
        // their own deadline, not one timeout after another.
        guard !deadline.hasPassed else {
            throw StateError(
                .unavailable,
                "cannot \(doing) Redis at \(endpoint.redactedURL): \(deadline.expiredText) waiting for the connection (an earlier call is still waiting for the server)"
            )
        }
        // A connection that sat idle may have died with a server restart:
        // one more try on a new connection, when safe and when time is left.
        var mayRetry = connection != nil
        while true {
            do {
                let live: RedisConnection
                if let connection {
                    live = connection
                    try live.setTimeout(deadline.remaining)
                } else {
                    live = try connect(timeout: deadline.remaining)
                }
                connection = live
                return try body(live)
            } catch let failure as RedisConnection.Failure {
                connection = nil
                if mayRetry && (idempotent || !failure.mayHaveApplied) && !deadline.hasPassed {
                    mayRetry = false
                    continue
                }
                let outcome = failure.mayHaveApplied ? " (the write may or may not have been applied)" : ""
                let timedOut = deadline.hasPassed ? "\(deadline.expiredText): " : ""
                throw StateError(
                    .unavailable,
                    "cannot \(doing) Redis at \(endpoint.redactedURL): \(timedOut)\(failure.message)\(outcome)")
            }
        }
    }

    /// A new connection, logged in (`AUTH`) and on its database (`SELECT`),
    /// whose connect and socket operations wait at most `timeout`.
    private func connect(timeout: Duration) throws -> RedisConnection {
        let connection = try RedisConnection.connect(
            host: endpoint.host, port: endpoint.port, timeout: timeout)
        if let password = endpoint.password {
            let auth = endpoint.username.map { ["AUTH", $0, password] } ?? ["AUTH", password]
            if case .error(let text) = try connection.command(auth) {
                throw StateError(
                    .unavailable, "Redis at \(endpoint.redactedURL) refused authentication: \(text)")
            }
        }
        if endpoint.database != 0,
            case .error(let text) = try connection.command(["SELECT", String(endpoint.database)])
        {
            throw StateError(
                .unavailable,
                "Redis at \(endpoint.redactedURL) cannot select database \(endpoint.database): \(text)")
        }
        return connection
    }
}
