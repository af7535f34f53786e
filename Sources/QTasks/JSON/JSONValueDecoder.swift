import Foundation

/// A `Decoder` over a ``JSONValue`` that ``JSONParser`` read: the worker's
/// fast path for task bodies (``TaskEnvelope/decode(_:catalog:messageID:decoder:)``),
/// several times cheaper than `JSONDecoder`, which was a quarter of a no-op
/// task's CPU.
///
/// It is conservative by design: whatever it is not sure to read exactly as
/// `JSONDecoder` does, it refuses with ``Unsupported``, and the caller then
/// decodes the body again with `JSONDecoder`, whose value or error is the
/// one used. So it only ever has to agree with `JSONDecoder` on success:
///
/// - integers from JSON integers that fit the type exactly (a number with a
///   fraction or an exponent is refused, even an integral one);
/// - `Double` from any JSON number (as `JSONDecoder`); `Float` is refused;
/// - `Date`, `Data`, `URL` and `Decimal`, which `JSONDecoder` reads by its
///   strategies or its own rules, are refused;
/// - every error of the decoded types themselves is refused too, so error
///   messages always come from `JSONDecoder`.
///
/// For the same reason it keeps no coding path (every container's is
/// empty): only error messages use one, and building it cost an array per
/// nested value.
struct JSONValueDecoder: Decoder {
    /// Anything this decoder will not decide; the caller falls back to
    /// `JSONDecoder`.
    struct Unsupported: Error {}

    let value: JSONValue
    let codingPath: [any CodingKey]
    let userInfo: [CodingUserInfoKey: Any]

    init(_ value: JSONValue, codingPath: [any CodingKey] = [], userInfo: [CodingUserInfoKey: Any]) {
        self.value = value
        self.codingPath = codingPath
        self.userInfo = userInfo
    }

    func container<Key: CodingKey>(keyedBy type: Key.Type) throws -> KeyedDecodingContainer<Key> {
        guard case .object(let fields) = value else { throw Unsupported() }
        return KeyedDecodingContainer(Keyed<Key>(fields: fields, codingPath: codingPath, userInfo: userInfo))
    }

    func unkeyedContainer() throws -> any UnkeyedDecodingContainer {
        guard case .array(let values) = value else { throw Unsupported() }
        return Unkeyed(values: values, codingPath: codingPath, userInfo: userInfo)
    }

    func singleValueContainer() throws -> any SingleValueDecodingContainer {
        Single(value: value, codingPath: codingPath, userInfo: userInfo)
    }

    // MARK: Values

    static func decode<T: Decodable>(
        _ type: T.Type, from value: JSONValue, codingPath: [any CodingKey], userInfo: [CodingUserInfoKey: Any]
    ) throws -> T {
        if T.self == JSONValue.self { return value as! T }
        if T.self == String.self { return try string(value) as! T }
        if T.self == Bool.self { return try bool(value) as! T }
        if T.self == Int.self { return try integer(Int.self, value) as! T }
        if T.self == Int64.self { return try integer(Int64.self, value) as! T }
        if T.self == Double.self { return try double(value) as! T }
        if T.self == Date.self || T.self == Data.self || T.self == URL.self || T.self == Decimal.self || T.self == Float.self {
            throw Unsupported()
        }
        return try T(from: JSONValueDecoder(value, codingPath: codingPath, userInfo: userInfo))
    }

    static func string(_ value: JSONValue) throws -> String {
        guard case .string(let text) = value else { throw Unsupported() }
        return text
    }

    static func bool(_ value: JSONValue) throws -> Bool {
        guard case .bool(let flag) = value else { throw Unsupported() }
        return flag
    }

    static func double(_ value: JSONValue) throws -> Double {
        switch value {
        case .double(let number) where number.isFinite: return number
        case .int(let number): return Double(number)
        default: throw Unsupported()
        }
    }

    static func integer<T: FixedWidthInteger>(_ type: T.Type, _ value: JSONValue) throws -> T {
        guard case .int(let number) = value, let exact = T(exactly: number) else { throw Unsupported() }
        return exact
    }

    // MARK: Containers

    private struct Keyed<Key: CodingKey>: KeyedDecodingContainerProtocol {
        let fields: [String: JSONValue]
        let codingPath: [any CodingKey]
        let userInfo: [CodingUserInfoKey: Any]

        var allKeys: [Key] { fields.keys.compactMap { Key(stringValue: $0) } }

        func contains(_ key: Key) -> Bool { fields[key.stringValue] != nil }

        private func value(_ key: Key) throws -> JSONValue {
            // Absent: JSONDecoder throws keyNotFound (decodeNil too, which
            // callers rely on); its error is the one to show.
            guard let value = fields[key.stringValue] else { throw Unsupported() }
            return value
        }

        func decodeNil(forKey key: Key) throws -> Bool {
            if case .null = try value(key) { return true }
            return false
        }

        func decode(_ type: Bool.Type, forKey key: Key) throws -> Bool { try JSONValueDecoder.bool(value(key)) }
        func decode(_ type: String.Type, forKey key: Key) throws -> String { try JSONValueDecoder.string(value(key)) }
        func decode(_ type: Double.Type, forKey key: Key) throws -> Double { try JSONValueDecoder.double(value(key)) }
        func decode(_ type: Float.Type, forKey key: Key) throws -> Float { throw Unsupported() }
        func decode(_ type: Int.Type, forKey key: Key) throws -> Int { try JSONValueDecoder.integer(type, value(key)) }
        func decode(_ type: Int8.Type, forKey key: Key) throws -> Int8 { try JSONValueDecoder.integer(type, value(key)) }
        func decode(_ type: Int16.Type, forKey key: Key) throws -> Int16 { try JSONValueDecoder.integer(type, value(key)) }
        func decode(_ type: Int32.Type, forKey key: Key) throws -> Int32 { try JSONValueDecoder.integer(type, value(key)) }
        func decode(_ type: Int64.Type, forKey key: Key) throws -> Int64 { try JSONValueDecoder.integer(type, value(key)) }
        func decode(_ type: UInt.Type, forKey key: Key) throws -> UInt { try JSONValueDecoder.integer(type, value(key)) }
        func decode(_ type: UInt8.Type, forKey key: Key) throws -> UInt8 { try JSONValueDecoder.integer(type, value(key)) }
        func decode(_ type: UInt16.Type, forKey key: Key) throws -> UInt16 { try JSONValueDecoder.integer(type, value(key)) }
        func decode(_ type: UInt32.Type, forKey key: Key) throws -> UInt32 { try JSONValueDecoder.integer(type, value(key)) }
        func decode(_ type: UInt64.Type, forKey key: Key) throws -> UInt64 { try JSONValueDecoder.integer(type, value(key)) }

        func decode<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T {
            try JSONValueDecoder.decode(type, from: value(key), codingPath: codingPath, userInfo: userInfo)
        }

        func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type, forKey key: Key) throws
            -> KeyedDecodingContainer<NestedKey>
        {
            try JSONValueDecoder(value(key), codingPath: codingPath, userInfo: userInfo).container(keyedBy: type)
        }

        func nestedUnkeyedContainer(forKey key: Key) throws -> any UnkeyedDecodingContainer {
            try JSONValueDecoder(value(key), codingPath: codingPath, userInfo: userInfo).unkeyedContainer()
        }

        func superDecoder() throws -> any Decoder { throw Unsupported() }
        func superDecoder(forKey key: Key) throws -> any Decoder { throw Unsupported() }
    }

    private struct Unkeyed: UnkeyedDecodingContainer {
        let values: [JSONValue]
        let codingPath: [any CodingKey]
        let userInfo: [CodingUserInfoKey: Any]
        var currentIndex = 0

        init(values: [JSONValue], codingPath: [any CodingKey], userInfo: [CodingUserInfoKey: Any]) {
            self.values = values
            self.codingPath = codingPath
            self.userInfo = userInfo
        }

        var count: Int? { values.count }
        var isAtEnd: Bool { currentIndex >= values.count }

        private mutating func next() throws -> JSONValue {
            guard currentIndex < values.count else { throw Unsupported() }
            defer { currentIndex += 1 }
            return values[currentIndex]
        }

        mutating func decodeNil() throws -> Bool {
            guard currentIndex < values.count else { throw Unsupported() }
            if case .null = values[currentIndex] {
                currentIndex += 1
                return true
            }
            return false
        }

        mutating func decode<T: Decodable>(_ type: T.Type) throws -> T {
            try JSONValueDecoder.decode(type, from: next(), codingPath: codingPath, userInfo: userInfo)
        }

        mutating func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type) throws -> KeyedDecodingContainer<NestedKey> {
            try JSONValueDecoder(next(), codingPath: codingPath, userInfo: userInfo).container(keyedBy: type)
        }

        mutating func nestedUnkeyedContainer() throws -> any UnkeyedDecodingContainer {
            try JSONValueDecoder(next(), codingPath: codingPath, userInfo: userInfo).unkeyedContainer()
        }

        mutating func superDecoder() throws -> any Decoder { throw Unsupported() }
    }

    private struct Single: SingleValueDecodingContainer {
        let value: JSONValue
        let codingPath: [any CodingKey]
        let userInfo: [CodingUserInfoKey: Any]

        func decodeNil() -> Bool {
            if case .null = value { return true }
            return false
        }

        func decode(_ type: Bool.Type) throws -> Bool { try JSONValueDecoder.bool(value) }
        func decode(_ type: String.Type) throws -> String { try JSONValueDecoder.string(value) }
        func decode(_ type: Double.Type) throws -> Double { try JSONValueDecoder.double(value) }
        func decode(_ type: Float.Type) throws -> Float { throw Unsupported() }
        func decode(_ type: Int.Type) throws -> Int { try JSONValueDecoder.integer(type, value) }
        func decode(_ type: Int8.Type) throws -> Int8 { try JSONValueDecoder.integer(type, value) }
        func decode(_ type: Int16.Type) throws -> Int16 { try JSONValueDecoder.integer(type, value) }
        func decode(_ type: Int32.Type) throws -> Int32 { try JSONValueDecoder.integer(type, value) }
        func decode(_ type: Int64.Type) throws -> Int64 { try JSONValueDecoder.integer(type, value) }
        func decode(_ type: UInt.Type) throws -> UInt { try JSONValueDecoder.integer(type, value) }
        func decode(_ type: UInt8.Type) throws -> UInt8 { try JSONValueDecoder.integer(type, value) }
        func decode(_ type: UInt16.Type) throws -> UInt16 { try JSONValueDecoder.integer(type, value) }
        func decode(_ type: UInt32.Type) throws -> UInt32 { try JSONValueDecoder.integer(type, value) }
        func decode(_ type: UInt64.Type) throws -> UInt64 { try JSONValueDecoder.integer(type, value) }

        func decode<T: Decodable>(_ type: T.Type) throws -> T {
            try JSONValueDecoder.decode(type, from: value, codingPath: codingPath, userInfo: userInfo)
        }
    }
}
