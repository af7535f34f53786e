import QTasks

/// The operations on one state: what a task handler uses. ``State`` (namespace
/// from a Swift type) and ``AnyState`` (namespace from a string) conform.
///
/// Names follow QTasks' `AsyncState` (`set`, `get`, `get_all`, `update`,
/// `delete`, `clear`); `modify` and `increment` are additions for atomic
/// read-modify-write. Every write applies the handle's ``ttl``. The
/// semantics are ``StateStore``'s; every method throws ``StateError``.
public protocol StateHandle: Sendable {
    /// The backend.
    var store: any StateStore { get }
    /// Which state.
    var id: StateID { get }
    /// When not nil, every write through this handle makes the state expire
    /// this long after the write; nil keeps the current expiry.
    var ttl: Duration? { get }
}

extension StateHandle {
    /// The raw JSON value of a field, or nil when it is not set (or the
    /// state expired).
    ///
    /// - Throws: ``StateError``.
    public func get(_ field: String) async throws -> JSONValue? {
        try await store.get(field, in: id)
    }

    /// A field decoded as `T` (through `JSONDecoder`), or nil when it is not
    /// set.
    ///
    /// ```swift
    /// let step = try await state.get("step", as: Int.self)   // Int?
    /// ```
    ///
    /// - Throws: ``StateError`` with ``StateError/Code-swift.struct/decoding``
    ///   when the value does not decode as `T`.
    public func get<T: Decodable>(_ field: String, as type: T.Type) async throws -> T? {
        guard let value = try await store.get(field, in: id) else { return nil }
        return try StateJSON.decode(T.self, from: value, field: field, in: id)
    }

    /// Every field; empty when the state does not exist or expired.
    ///
    /// - Throws: ``StateError``.
    public func getAll() async throws -> [String: JSONValue] {
        try await store.getAll(in: id)
    }

    /// Sets one field to any `Encodable` value (encoded as `JSONEncoder`
    /// does), keeping the other fields.
    ///
    /// ```swift
    /// try await state.set("state", to: "await_phone")
    /// ```
    ///
    /// - Throws: ``StateError`` (``StateError/Code-swift.struct/encoding`` when
    ///   the value cannot be encoded).
    public func set(_ field: String, to value: some Encodable) async throws {
        let json = try StateJSON.encode(value, field: field, in: id)
        try await store.update([field: json], in: id, ttl: ttl)
    }

    /// Sets several fields in one atomic write, keeping the others: the
    /// seed's `state.update(step=1, prompt="…")`.
    ///
    /// ```swift
    /// try await state.update(["step": 1, "prompt": "Введите телефон"])
    /// ```
    ///
    /// - Throws: ``StateError``.
    public func update(_ fields: [String: JSONValue]) async throws {
        try await store.update(fields, in: id, ttl: ttl)
    }

    /// Sets several fields of one `Encodable` type in one atomic write.
    ///
    /// - Throws: ``StateError``.
    public func update<Value: Encodable>(_ fields: [String: Value]) async throws {
        var json: [String: JSONValue] = [:]
        for (field, value) in fields {
            json[field] = try StateJSON.encode(value, field: field, in: id)
        }
        try await store.update(json, in: id, ttl: ttl)
    }

    /// Removes one field (not an error when it is not set).
    ///
    /// - Throws: ``StateError``.
    public func delete(_ field: String) async throws {
        try await store.delete(field, in: id)
    }

    /// Removes every field: the state no longer exists.
    ///
    /// - Throws: ``StateError``.
    public func clear() async throws {
        try await store.clear(id)
    }

    /// Atomic read-modify-write of the whole document; see
    /// ``StateStore/modify(_:ttl:_:)``. `body` may run more than once.
    ///
    /// ```swift
    /// let seats = try await state.modify { fields in
    ///     let left = fields["seats"]?.intValue ?? 10
    ///     guard left > 0 else { return false }
    ///     fields["seats"] = .int(left - 1)
    ///     return true
    /// }
    /// ```
    ///
    /// - Returns: what `body` returned.
    /// - Throws: ``StateError``, or `body`'s error (then nothing is written).
    public func modify<T: Sendable>(_ body: @escaping @Sendable (inout [String: JSONValue]) throws -> T) async throws
        -> T
    {
        try await store.modify(id, ttl: ttl, body)
    }

    /// Adds `amount` to an integer field atomically (a missing field counts
    /// as 0), through ``modify(_:)``.
    ///
    /// - Returns: the new value.
    /// - Throws: ``StateError`` with ``StateError/Code-swift.struct/decoding``
    ///   when the field holds something other than an integer,
    ///   ``StateError/Code-swift.struct/invalidArgument`` on overflow.
    @discardableResult
    public func increment(_ field: String, by amount: Int64 = 1) async throws -> Int64 {
        let id = self.id
        return try await modify { fields in
            let current: Int64
            switch fields[field] {
            case nil: current = 0
            case .int(let value)?: current = value
            case let other?:
                throw StateError(
                    .decoding, "field '\(field)' of state \(id) holds a \(other.kindName), not an integer: \(other)")
            }
            let (sum, overflow) = current.addingReportingOverflow(amount)
            if overflow {
                throw StateError(
                    .invalidArgument, "incrementing field '\(field)' of state \(id) by \(amount) overflows Int64")
            }
            fields[field] = .int(sum)
            return sum
        }
    }
}
