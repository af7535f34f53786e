/// Text from a message (a task name, a uuid, an error message) made safe
/// for one log line.
///
/// A producer controls these strings: a newline in a task name would
/// otherwise start a forged log line, and control or bidirectional-override
/// characters would garble what an operator reads. They are written as
/// escapes (`\n`, `\u{202E}`), and very long text is cut.
public enum LogText {
    /// At most this many characters are kept.
    public static let limit = 512

    public static func sanitized(_ text: String) -> String {
        var needsWork = text.count > limit
        if !needsWork {
            for scalar in text.unicodeScalars where isUnsafe(scalar) {
                needsWork = true
                break
            }
        }
        guard needsWork else { return text }
        var result = ""
        var kept = 0
        for character in text {
            if kept == limit {
                result += "…"
                break
            }
            for scalar in character.unicodeScalars {
                if isUnsafe(scalar) {
                    switch scalar {
                    case "\n": result += "\\n"
                    case "\r": result += "\\r"
                    case "\t": result += "\\t"
                    default: result += "\\u{\(String(scalar.value, radix: 16, uppercase: true))}"
                    }
                } else {
                    result.unicodeScalars.append(scalar)
                }
            }
            kept += 1
        }
        return result
    }

    private static func isUnsafe(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.properties.generalCategory {
        case .control, .format, .lineSeparator, .paragraphSeparator, .surrogate, .unassigned, .privateUse:
            // Zero-width joiners are format characters that emoji need.
            return scalar != "\u{200D}"
        default:
            return false
        }
    }
}
