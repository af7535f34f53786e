import Foundation

/// Plain-text output of the listing commands: aligned columns, UTC times,
/// short durations, compact JSON lines.
enum TextTable {
    /// Columns padded to their widest cell, two spaces apart; the columns
    /// in `rightAligned` (numbers) are aligned right, the others left.
    /// Trailing spaces are trimmed.
    static func render(header: [String], rows: [[String]], rightAligned: Set<Int> = []) -> String {
        let all = ([header] + rows).map { $0.map(TerminalText.safeLine) }
        let widths = header.indices.map { column in all.map { $0[column].count }.max() ?? 0 }
        return all.map { line in
            var text = ""
            for (column, cell) in line.enumerated() {
                let pad = String(repeating: " ", count: widths[column] - cell.count)
                if column > 0 { text += "  " }
                text += rightAligned.contains(column) ? pad + cell : cell + pad
            }
            return String(text.reversed().drop(while: { $0 == " " }).reversed())
        }.joined(separator: "\n")
    }
}

/// Times and durations as the listing commands print them.
enum TimeText {
    /// `2025-06-01 12:00:01.250Z` (UTC, milliseconds).
    static func utc(_ date: Date) -> String {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "yyyy-MM-dd HH:mm:ss.SSS'Z'"
        return formatter.string(from: date)
    }

    /// `0.003 s`, `12.500 s`: seconds with milliseconds.
    static func seconds(_ duration: Duration) -> String {
        let components = duration.components
        let seconds = Double(components.seconds) + Double(components.attoseconds) / 1e18
        return String(format: "%.3f s", seconds)
    }

    /// `45s`, `3m12s`, `2h05m`, `3d04h`: an age or an uptime, to the
    /// largest two units.
    static func age(_ interval: TimeInterval) -> String {
        let total = max(0, Int(interval.rounded(.down)))
        let (days, hours, minutes, seconds) = (total / 86_400, total / 3600 % 24, total / 60 % 60, total % 60)
        if days > 0 { return String(format: "%dd%02dh", days, hours) }
        if hours > 0 { return String(format: "%dh%02dm", hours, minutes) }
        if minutes > 0 { return String(format: "%dm%02ds", minutes, seconds) }
        return "\(seconds)s"
    }
}

/// One compact JSON object per line (keys sorted, slashes and non-ASCII
/// text unescaped), flushed at once so that a reader of a pipe sees it.
enum JSONLines {
    static func print<T: Encodable>(_ value: T) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        Swift.print(String(decoding: try encoder.encode(value), as: UTF8.self))
        fflush(nil)
    }
}
