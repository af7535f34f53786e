import Foundation
import QTasks

/// JSON text of stored values: compact, object keys sorted, non-ASCII left as
/// UTF-8 (``JSONValue/description``); parsed back with `JSONDecoder`.
///
/// Package access: the SQLite and Redis backends, in modules of their own,
/// store values with the same rules as the memory backend.
package enum StateJSON {
    /// The JSON text of `value`.
    ///
    /// - Throws: `invalidArgument` for a non-finite double (JSON cannot spell
    ///   it, and writing `null` instead would silently change the value).
    package static func text(of value: JSONValue, field: String, in state: StateID) throws(StateError) -> String {
        guard isFinite(value) else {
            throw StateError(
                .invalidArgument,
                "field '\(field)' of state \(state) holds a non-finite number, which JSON cannot store")
        }
        return value.description
    }

    /// The JSON text of a whole document (an object).
    package static func text(of document: [String: JSONValue], in state: StateID) throws(StateError) -> String {
        for (field, value) in document where !isFinite(value) {
            throw StateError(
                .invalidArgument,
                "field '\(field)' of state \(state) holds a non-finite number, which JSON cannot store")
        }
        return JSONValue.object(document).description
    }

    /// Parses stored JSON text.
    ///
    /// - Parameter what: names the value in the error, e.g. "field 'step' of state RegistrationState/42".
    /// - Throws: `corrupted` when the text is not JSON.
    package static func value(from bytes: some Collection<UInt8>, what: @autoclosure () -> String) throws(StateError)
        -> JSONValue
    {
        do {
            return try JSONDecoder().decode(JSONValue.self, from: Data(bytes))
        } catch {
            let preview = String(decoding: bytes.prefix(80), as: UTF8.self)
            throw StateError(.corrupted, "\(what()) is not JSON: \(preview)")
        }
    }

    /// Parses a stored document (a JSON object).
    package static func document(from text: String, what: @autoclosure () -> String) throws(StateError) -> [String: JSONValue] {
        let value = try value(from: Array(text.utf8), what: what())
        guard case .object(let document) = value else {
            throw StateError(.corrupted, "\(what()) is a JSON \(value.kindName), not an object")
        }
        return document
    }

    /// Decodes `value` as `T` through `JSONDecoder`.
    ///
    /// - Throws: `decoding`, naming the field, the type and the stored kind.
    package static func decode<T: Decodable>(
        _ type: T.Type, from value: JSONValue, field: String, in state: StateID
    ) throws(StateError) -> T {
        if let value = value as? T { return value }
        do {
            return try JSONDecoder().decode(T.self, from: Data(value.description.utf8))
        } catch {
            var text = value.description
            if text.count > 80 { text = String(text.prefix(77)) + "..." }
            throw StateError(
                .decoding,
                "field '\(field)' of state \(state) does not decode as \(T.self): it holds a \(value.kindName), \(text) (\(error))"
            )
        }
    }

    /// Converts an `Encodable` value to the JSON value to store.
    ///
    /// - Throws: `invalidArgument` for a non-finite number (as ``text(of:field:in:)``),
    ///   `encoding` when `JSONEncoder` fails.
    package static func encode(_ value: some Encodable, field: String, in state: StateID) throws(StateError) -> JSONValue {
        do {
            return try JSONValue(encoding: value)
        } catch is NonFiniteNumberError {
            throw StateError(
                .invalidArgument,
                "field '\(field)' of state \(state) holds a non-finite number, which JSON cannot store")
        } catch {
            throw StateError(
                .encoding, "field '\(field)' of state \(state): cannot encode \(type(of: value)) as JSON: \(error)")
        }
    }

    private static func isFinite(_ value: JSONValue) -> Bool {
        switch value {
        case .double(let number): return number.isFinite
        case .array(let elements): return elements.allSatisfy(isFinite)
        case .object(let members): return members.values.allSatisfy(isFinite)
        case .null, .bool, .int, .string: return true
        }
    }
}
