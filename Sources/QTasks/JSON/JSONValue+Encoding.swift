import Foundation

extension JSONValue {
    /// Converts any `Encodable` value to its JSON value, as `JSONEncoder`
    /// would encode it.
    ///
    /// - Throws: ``NonFiniteNumberError`` for an infinity or NaN anywhere in
    ///   the value (JSON has no such numbers), `EncodingError` when the value
    ///   cannot be encoded otherwise.
    public init(encoding value: some Encodable) throws {
        // Common task results skip the encode-then-parse round trip.
        switch value {
        case let value as JSONValue:
            try value.checkFinite()
            self = value
        case let value as Int: self = .int(Int64(value))
        case let value as Int64: self = .int(value)
        case let value as Int32: self = .int(Int64(value))
        case let value as Double:
            guard value.isFinite else { throw NonFiniteNumberError(value) }
            self = .double(value)
        case let value as String: self = .string(value)
        case let value as Bool: self = .bool(value)
        // A typed task without result: `returning` null, no encoder.
        case is NoResult: self = .null
        case let value as [JSONValue]:
            self = .array(value)
            try checkFinite()
        case let value as [String: JSONValue]:
            self = .object(value)
            try checkFinite()
        default:
            let data = try JSONEncoder().encode(value)
            self = try JSONDecoder().decode(JSONValue.self, from: data)
        }
    }
}
