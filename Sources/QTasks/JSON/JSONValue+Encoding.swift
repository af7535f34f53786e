import Foundation

extension JSONValue {
    /// Converts any `Encodable` value to its JSON value, as `JSONEncoder`
    /// would encode it.
    ///
    /// - Throws: `EncodingError` when the value cannot be encoded (for
    ///   example a non-finite `Double` nested in a struct).
    public init(encoding value: some Encodable) throws {
        // Common task results skip the encode-then-parse round trip.
        switch value {
        case let value as JSONValue: self = value
        case let value as Int: self = .int(Int64(value))
        case let value as Int64: self = .int(value)
        case let value as Int32: self = .int(Int64(value))
        case let value as Double: self = .double(value)
        case let value as String: self = .string(value)
        case let value as Bool: self = .bool(value)
        case let value as [JSONValue]: self = .array(value)
        case let value as [String: JSONValue]: self = .object(value)
        default:
            let data = try JSONEncoder().encode(value)
            self = try JSONDecoder().decode(JSONValue.self, from: data)
        }
    }
}
