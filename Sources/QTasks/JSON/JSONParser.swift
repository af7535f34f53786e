/// A small strict JSON parser into ``JSONValue``, for what the result
/// stores read on every batch (records, arguments): several times cheaper
/// than `JSONDecoder` through `Codable`, which dominated their write path.
///
/// Numbers without a fraction or exponent that fit an `Int64` are `.int`,
/// others `.double` (as ``JSONValue``'s `Decodable` reads them; `==` treats
/// an integral double and the same int as equal anyway). Strings are
/// unescaped (`\uXXXX` with surrogate pairs); invalid UTF-8 is repaired as
/// `String(decoding:as:)` does.
package struct JSONParser {
    package struct Failure: Error, CustomStringConvertible {
        package var message: String
        package var offset: Int
        package var description: String { "\(message) at byte \(offset)" }
    }

    private let bytes: UnsafeBufferPointer<UInt8>
    private var index = 0
    private var depth = 0
    private static let maxDepth = 512
    /// Refuse, rather than repair or decode, invalid UTF-8 and `\u`
    /// escapes (``members(of:strict:_:)``).
    private let strict: Bool

    private init(_ bytes: UnsafeBufferPointer<UInt8>, strict: Bool = false) {
        self.bytes = bytes
        self.strict = strict
    }

    /// The value of a whole JSON text.
    ///
    /// - Throws: ``Failure`` saying what is wrong and where.
    package static func parse(_ text: some Collection<UInt8>) throws -> JSONValue {
        let result = try text.withContiguousStorageIfAvailable { buffer in
            var parser = JSONParser(buffer)
            return try parser.document()
        }
        if let result { return result }
        return try Array(text).withUnsafeBufferPointer { buffer in
            var parser = JSONParser(buffer)
            return try parser.document()
        }
    }

    /// The members of a whole JSON text that is an object, handed to
    /// `member` in order as they are read (a repeated key each time),
    /// without building the object: for a reader that wants a few known
    /// keys (the worker's task envelope), a dictionary of them costs more
    /// than the parse.
    ///
    /// - Parameter strict: also fail on invalid UTF-8 (anywhere: outside
    ///   strings any byte over 0x7F is a syntax error anyway) and on any
    ///   `\u` escape, instead of repairing and decoding them: the
    ///   worker's task envelope leaves such bodies to `JSONDecoder`, and
    ///   checking here saves it two passes over every body (one of them
    ///   building a `String` of the whole body).
    /// - Returns: false, having called `member` for none, when the text is
    ///   valid JSON of another kind.
    /// - Throws: ``Failure`` as ``parse(_:)`` does, or what `member` throws.
    package static func members(
        of text: [UInt8], strict: Bool = false, _ member: (String, JSONValue) throws -> Void
    ) throws -> Bool {
        try text.withUnsafeBufferPointer { buffer in
            var parser = JSONParser(buffer, strict: strict)
            parser.skipWhitespace()
            guard parser.index < buffer.count, buffer[parser.index] == UInt8(ascii: "{") else {
                _ = try parser.document()
                return false
            }
            try parser.objectMembers(member)
            parser.skipWhitespace()
            guard parser.index == buffer.count else { throw parser.fail("text after the JSON value") }
            return true
        }
    }

    private mutating func document() throws -> JSONValue {
        let value = try self.value()
        skipWhitespace()
        guard index == bytes.count else { throw fail("text after the JSON value") }
        return value
    }

    private func fail(_ message: String) -> Failure {
        Failure(message: message, offset: index)
    }

    private mutating func skipWhitespace() {
        while index < bytes.count {
            switch bytes[index] {
            case 0x20, 0x0A, 0x0D, 0x09: index += 1
            default: return
            }
        }
    }

    private mutating func value() throws -> JSONValue {
        skipWhitespace()
        guard index < bytes.count else { throw fail("unexpected end of JSON") }
        switch bytes[index] {
        case UInt8(ascii: "{"): return try object()
        case UInt8(ascii: "["): return try array()
        case UInt8(ascii: "\""): return .string(try string())
        case UInt8(ascii: "t"): try literal("true"); return .bool(true)
        case UInt8(ascii: "f"): try literal("false"); return .bool(false)
        case UInt8(ascii: "n"): try literal("null"); return .null
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return try number()
        default: throw fail("unexpected character '\(Character(Unicode.Scalar(bytes[index])))'")
        }
    }

    private mutating func literal(_ word: StaticString) throws {
        let count = word.utf8CodeUnitCount
        guard index + count <= bytes.count else { throw fail("unexpected end of JSON") }
        for offset in 0..<count where bytes[index + offset] != word.utf8Start[offset] {
            throw fail("invalid literal")
        }
        index += count
    }

    private mutating func enter() throws {
        depth += 1
        guard depth <= Self.maxDepth else { throw fail("JSON nested deeper than \(Self.maxDepth)") }
    }

    private mutating func object() throws -> JSONValue {
        // Room for a task body's fields, so that the usual objects are
        // built without growing (from empty, a dictionary of four members
        // was allocated three times).
        var members: [String: JSONValue] = [:]
        try objectMembers { key, value in
            if members.isEmpty { members.reserveCapacity(4) }
            members[key] = value
        }
        return .object(members)
    }

    /// Reads an object from its `{`, handing over each member.
    private mutating func objectMembers(_ member: (String, JSONValue) throws -> Void) throws {
        try enter()
        index += 1  // {
        skipWhitespace()
        if index < bytes.count, bytes[index] == UInt8(ascii: "}") {
            index += 1
            depth -= 1
            return
        }
        while true {
            skipWhitespace()
            guard index < bytes.count, bytes[index] == UInt8(ascii: "\"") else { throw fail("expected a key") }
            let key = try string()
            skipWhitespace()
            guard index < bytes.count, bytes[index] == UInt8(ascii: ":") else { throw fail("expected ':'") }
            index += 1
            try member(key, try value())
            skipWhitespace()
            guard index < bytes.count else { throw fail("unexpected end of JSON") }
            if bytes[index] == UInt8(ascii: ",") {
                index += 1
            } else if bytes[index] == UInt8(ascii: "}") {
                index += 1
                depth -= 1
                return
            } else {
                throw fail("expected ',' or '}'")
            }
        }
    }

    private mutating func array() throws -> JSONValue {
        try enter()
        index += 1  // [
        var elements: [JSONValue] = []
        skipWhitespace()
        if index < bytes.count, bytes[index] == UInt8(ascii: "]") {
            index += 1
            depth -= 1
            return .array(elements)
        }
        while true {
            elements.append(try value())
            skipWhitespace()
            guard index < bytes.count else { throw fail("unexpected end of JSON") }
            if bytes[index] == UInt8(ascii: ",") {
                index += 1
            } else if bytes[index] == UInt8(ascii: "]") {
                index += 1
                depth -= 1
                return .array(elements)
            } else {
                throw fail("expected ',' or ']'")
            }
        }
    }

    private mutating func number() throws -> JSONValue {
        let start = index
        var integral = true
        if bytes[index] == UInt8(ascii: "-") { index += 1 }
        guard index < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[index]) else {
            throw fail("invalid number")
        }
        while index < bytes.count, Self.isNumberByte(bytes[index]) {
            if !(UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[index]) { integral = false }
            index += 1
        }
        let text = String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<index]), as: UTF8.self)
        if integral, let value = Int64(text) { return .int(value) }
        guard let value = Double(text), value.isFinite else { throw Failure(message: "invalid number '\(text)'", offset: start) }
        return .double(value)
    }

    private static func isNumberByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "."), UInt8(ascii: "e"), UInt8(ascii: "E"),
            UInt8(ascii: "+"), UInt8(ascii: "-"):
            return true
        default:
            return false
        }
    }

    private mutating func string() throws -> String {
        index += 1  // opening quote
        let start = index
        // Fast path: no escapes.
        var bits: UInt8 = 0  // any byte over 0x7F sets the high bit
        while index < bytes.count {
            let byte = bytes[index]
            if byte == UInt8(ascii: "\"") {
                let utf8 = UnsafeBufferPointer(rebasing: bytes[start..<index])
                let text = bits < 0x80 ? String(decoding: utf8, as: UTF8.self) : try makeString(utf8)
                index += 1
                return text
            }
            if byte == UInt8(ascii: "\\") { break }
            if byte < 0x20 { throw fail("control character in a string") }
            bits |= byte
            index += 1
        }
        var scratch = Array(UnsafeBufferPointer(rebasing: bytes[start..<index]))
        while index < bytes.count {
            let byte = bytes[index]
            switch byte {
            case UInt8(ascii: "\""):
                index += 1
                return try scratch.withUnsafeBufferPointer { try makeString($0) }
            case UInt8(ascii: "\\"):
                index += 1
                guard index < bytes.count else { throw fail("unexpected end of JSON") }
                let escape = bytes[index]
                index += 1
                switch escape {
                case UInt8(ascii: "\""): scratch.append(UInt8(ascii: "\""))
                case UInt8(ascii: "\\"): scratch.append(UInt8(ascii: "\\"))
                case UInt8(ascii: "/"): scratch.append(UInt8(ascii: "/"))
                case UInt8(ascii: "b"): scratch.append(0x08)
                case UInt8(ascii: "f"): scratch.append(0x0C)
                case UInt8(ascii: "n"): scratch.append(0x0A)
                case UInt8(ascii: "r"): scratch.append(0x0D)
                case UInt8(ascii: "t"): scratch.append(0x09)
                case UInt8(ascii: "u"):
                    if strict { throw fail("\\u escape (strict)") }
                    var scalar = try hex4()
                    if (0xD800..<0xDC00).contains(scalar) {
                        // A high surrogate: its low half must follow.
                        guard index + 1 < bytes.count, bytes[index] == UInt8(ascii: "\\"),
                            bytes[index + 1] == UInt8(ascii: "u")
                        else { throw fail("unpaired UTF-16 surrogate") }
                        index += 2
                        let low = try hex4()
                        guard (0xDC00..<0xE000).contains(low) else { throw fail("unpaired UTF-16 surrogate") }
                        scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                    } else if (0xDC00..<0xE000).contains(scalar) {
                        throw fail("unpaired UTF-16 surrogate")
                    }
                    guard let unicode = Unicode.Scalar(scalar) else { throw fail("invalid \\u escape") }
                    scratch.append(contentsOf: String(Character(unicode)).utf8)
                default:
                    throw fail("invalid escape")
                }
            default:
                if byte < 0x20 { throw fail("control character in a string") }
                scratch.append(byte)
                index += 1
            }
        }
        throw fail("unterminated string")
    }

    /// A string's bytes as a `String`: repaired as `String(decoding:as:)`
    /// does, or, strict, refused when they are not valid UTF-8 (ASCII
    /// needs no check: the caller skips this for it).
    private func makeString(_ utf8: UnsafeBufferPointer<UInt8>) throws -> String {
        guard strict else { return String(decoding: utf8, as: UTF8.self) }
        guard let text = String(validating: utf8, as: UTF8.self) else { throw fail("invalid UTF-8 (strict)") }
        return text
    }

    private mutating func hex4() throws -> UInt32 {
        guard index + 4 <= bytes.count else { throw fail("unexpected end of JSON") }
        var value: UInt32 = 0
        for _ in 0..<4 {
            let byte = bytes[index]
            let digit: UInt8
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = byte - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = byte - UInt8(ascii: "A") + 10
            default: throw fail("invalid \\u escape")
            }
            value = value << 4 | UInt32(digit)
            index += 1
        }
        return value
    }
}
