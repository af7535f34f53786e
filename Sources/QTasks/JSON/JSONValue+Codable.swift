extension JSONValue: Codable {
    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            self = .null
        } else if let value = try? container.decode(Bool.self) {
            self = .bool(value)
        } else if let value = try? container.decode(Int64.self) {
            self = .int(value)
        } else if let value = try? container.decode(Double.self) {
            self = .double(value)
        } else if let value = try? container.decode(String.self) {
            self = .string(value)
        } else if let value = try? container.decode([JSONValue].self) {
            self = .array(value)
        } else if let value = try? container.decode([String: JSONValue].self) {
            self = .object(value)
        } else {
            // Say why, when a number or a string is there but unreadable (a
            // number out of range, a lone UTF-16 surrogate): that tells more
            // than "not a JSON value".
            // Arrays and objects pass on what is wrong inside them.
            let attempts: [() throws -> Void] = [
                { _ = try container.decode(Double.self) }, { _ = try container.decode(String.self) },
                { _ = try container.decode([JSONValue].self) }, { _ = try container.decode([String: JSONValue].self) },
            ]
            for attempt in attempts {
                do {
                    try attempt()
                } catch let error as DecodingError {
                    if case .dataCorrupted = error { throw error }
                } catch {
                    throw error
                }
            }
            throw DecodingError.dataCorruptedError(in: container, debugDescription: "not a JSON value")
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .null: try container.encodeNil()
        case .bool(let value): try container.encode(value)
        case .int(let value): try container.encode(value)
        case .double(let value): try container.encode(value)
        case .string(let value): try container.encode(value)
        case .array(let value): try container.encode(value)
        case .object(let value): try container.encode(value)
        }
    }
}
