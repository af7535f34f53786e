/// Text from the store or the exchange made safe for a terminal: task
/// names, uuids and error messages come from any producer, and an escape
/// sequence in one (`ESC [ 2 J`, a carriage return) would otherwise clear
/// the screen, recolour it, or overwrite a line when printed.
enum TerminalText {
    /// `text` with every control character (C0 but tab and newline, DEL,
    /// C1) and bidirectional override (U+202A–U+202E, U+2066–U+2069: they
    /// reorder what follows, so a name can pass for another) written as
    /// `\u{1B}`.
    static func safe(_ text: String) -> String {
        escaping(text, keepNewlines: true)
    }

    /// ``safe(_:)`` for one line (a table cell): newlines escaped too.
    static func safeLine(_ text: String) -> String {
        escaping(text, keepNewlines: false)
    }

    private static func escaping(_ text: String, keepNewlines: Bool) -> String {
        guard text.unicodeScalars.contains(where: { isControl($0, keepNewlines: keepNewlines) }) else { return text }
        var result = ""
        result.unicodeScalars.reserveCapacity(text.unicodeScalars.count)
        for scalar in text.unicodeScalars {
            if isControl(scalar, keepNewlines: keepNewlines) {
                result += "\\u{" + String(scalar.value, radix: 16, uppercase: true) + "}"
            } else {
                result.unicodeScalars.append(scalar)
            }
        }
        return result
    }

    private static func isControl(_ scalar: Unicode.Scalar, keepNewlines: Bool) -> Bool {
        switch scalar.value {
        case 0x09: return false
        case 0x0A: return !keepNewlines
        case 0x00...0x1F, 0x7F...0x9F, 0x202A...0x202E, 0x2066...0x2069: return true
        default: return false
        }
    }
}
