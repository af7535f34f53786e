import Foundation

/// Explains why a body failed to parse. Only runs on the error path:
/// `JSONDecoder` reports every syntax problem as "not valid JSON", and
/// its lazy string decoding lets invalid UTF-8 surface as a confusing type
/// error far from the cause.
enum JSONDiagnostics {
    /// Foundation's parser refuses deeper documents; named here so the
    /// message can say why.
    static let maximumDepth = 512

    static func isValidUTF8(_ body: [UInt8]) -> Bool {
        String(validating: body, as: UTF8.self) != nil
    }

    /// A one-line reason why `body` is not a readable JSON document.
    static func syntaxProblem(in body: [UInt8]) -> String {
        if body.allSatisfy({ $0 == 0x20 || $0 == 0x0A || $0 == 0x0D || $0 == 0x09 }) {
            return "task message body is empty"
        }
        if !isValidUTF8(body) {
            return "task message body is not valid UTF-8"
        }
        if depth(of: body) > maximumDepth {
            return "task message JSON nests deeper than \(maximumDepth) levels"
        }
        var detail = "syntax error"
        do {
            _ = try JSONSerialization.jsonObject(with: Data(body), options: [.fragmentsAllowed])
        } catch {
            if let text = (error as NSError).userInfo[NSDebugDescriptionErrorKey] as? String {
                detail = text
            }
        }
        return "task message body is not valid JSON (\(detail))"
    }

    /// The deepest nesting of arrays and objects, counting brackets outside
    /// strings. Stops counting once past the limit.
    static func depth(of body: [UInt8]) -> Int {
        var depth = 0
        var deepest = 0
        var inString = false
        var escaped = false
        for byte in body {
            if inString {
                if escaped { escaped = false }
                else if byte == UInt8(ascii: "\\") { escaped = true }
                else if byte == UInt8(ascii: "\"") { inString = false }
                continue
            }
            switch byte {
            case UInt8(ascii: "\""): inString = true
            case UInt8(ascii: "["), UInt8(ascii: "{"):
                depth += 1
                if depth > deepest {
                    deepest = depth
                    if deepest > maximumDepth { return deepest }
                }
            case UInt8(ascii: "]"), UInt8(ascii: "}"): depth -= 1
            default: break
            }
        }
        return deepest
    }

    /// What kind of JSON value `body` holds at the top, from its first
    /// significant byte ("array", "string", ...).
    static func topLevelKind(of body: [UInt8]) -> String {
        for byte in body {
            switch byte {
            case 0x20, 0x0A, 0x0D, 0x09: continue
            case UInt8(ascii: "["): return "array"
            case UInt8(ascii: "\""): return "string"
            case UInt8(ascii: "t"), UInt8(ascii: "f"): return "bool"
            case UInt8(ascii: "n"): return "null"
            case UInt8(ascii: "{"): return "object"
            default: return "number"
            }
        }
        return "nothing"
    }
}
