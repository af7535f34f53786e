import Foundation

/// ISO 8601 times as Python's `datetime.isoformat()` writes them, which is
/// what Celery sends in its `eta` and `expires` headers (Celery message
/// protocol 2, docs.celeryq.dev, "Message Protocol"):
/// `2025-11-30T01:02:03.456789+00:00`.
///
/// Read: `YYYY-MM-DD`, then `T` or a space, `HH:MM[:SS[.fraction]]`, then
/// an optional `Z` or `±HH:MM` (or `±HHMM`). A time without an offset is
/// read as UTC (Celery's default `timezone`; a Celery worker would read it
/// in its own local zone). Times are Unix seconds (`Double`), as on the
/// wire elsewhere in the package.
enum ISOTime {
    /// The Unix seconds of `text`, nil when it is not such a time.
    static func seconds(from text: String) -> Double? {
        let bytes = Array(text.utf8)
        var index = 0
        func number(_ count: Int) -> Int? {
            guard index + count <= bytes.count else { return nil }
            var value = 0
            for byte in bytes[index..<(index + count)] {
                guard (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) else { return nil }
                value = value * 10 + Int(byte - UInt8(ascii: "0"))
            }
            index += count
            return value
        }
        func expect(_ characters: String) -> Bool {
            guard index < bytes.count, characters.utf8.contains(bytes[index]) else { return false }
            index += 1
            return true
        }
        guard let year = number(4), expect("-"), let month = number(2), expect("-"), let day = number(2),
              expect("T "), let hour = number(2), expect(":"), let minute = number(2)
        else { return nil }
        var second = 0
        var fraction = 0.0
        if index < bytes.count, bytes[index] == UInt8(ascii: ":") {
            index += 1
            guard let value = number(2) else { return nil }
            second = value
            if index < bytes.count, bytes[index] == UInt8(ascii: ".") || bytes[index] == UInt8(ascii: ",") {
                index += 1
                var scale = 0.1
                let start = index
                while index < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[index]) {
                    fraction += Double(bytes[index] - UInt8(ascii: "0")) * scale
                    scale /= 10
                    index += 1
                }
                guard index > start else { return nil }
            }
        }
        var offset = 0
        if index < bytes.count {
            if bytes[index] == UInt8(ascii: "Z") || bytes[index] == UInt8(ascii: "z") {
                index += 1
            } else {
                let sign = bytes[index] == UInt8(ascii: "-") ? -1 : 1
                guard expect("+-"), let hours = number(2) else { return nil }
                _ = expect(":")
                guard let minutes = number(2), hours < 24, minutes < 60 else { return nil }
                offset = sign * (hours * 3600 + minutes * 60)
            }
        }
        guard index == bytes.count, (1...12).contains(month), (1...31).contains(day), hour < 24, minute < 60,
              second < 61
        else { return nil }
        var parts = tm()
        parts.tm_year = Int32(year - 1900)
        parts.tm_mon = Int32(month - 1)
        parts.tm_mday = Int32(day)
        parts.tm_hour = Int32(hour)
        parts.tm_min = Int32(minute)
        parts.tm_sec = Int32(second)
        let utc = timegm(&parts)
        // timegm normalises 31 February into March: refuse such a date.
        guard parts.tm_mday == Int32(day), parts.tm_mon == Int32(month - 1) else { return nil }
        return Double(utc - offset) + fraction
    }

    /// `seconds` as `2025-11-30T01:02:03.456789+00:00` (UTC).
    static func text(_ seconds: Double) -> String { CeleryResult.isoDate(seconds) }
}
