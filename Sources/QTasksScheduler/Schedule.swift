import Foundation

/// When a scheduled task is due: at a fixed interval, or on a cron expression.
///
/// Ticks are points in time (Unix seconds, UTC) that every scheduler process
/// computes alike, so that processes agree on which tick is due:
/// - ``every(_:)`` ticks at the multiples of the interval since the Unix epoch
///   (`.every(.seconds(60))` at every whole minute, `.every(.seconds(1))` at
///   every whole second);
/// - ``cron(_:)`` ticks at the whole minutes its expression matches, in UTC.
public enum Schedule: Sendable, Hashable, CustomStringConvertible {
    /// At every multiple of the interval since the epoch. Ticks are whole
    /// seconds: a fraction of a second is dropped, and an interval under
    /// 1 s ticks every second.
    case every(Duration)
    /// A standard 5-field cron expression (``CronExpression``), UTC.
    case cron(CronExpression)

    /// `.cron` from text.
    ///
    /// - Throws: ``CronExpression/ParseError``.
    public static func cron(_ text: String) throws -> Schedule {
        .cron(try CronExpression(parsing: text))
    }

    /// The first tick strictly after `time` (Unix seconds), or nil when there
    /// is none (a cron expression that never matches, such as `0 0 31 2 *`,
    /// within the next 8 years).
    public func nextTick(after time: Int64) -> Int64? {
        switch self {
        case .every(let interval):
            let interval = max(1, interval.components.seconds)
            return (floorDiv(time, interval) + 1) * interval
        case .cron(let expression):
            return expression.nextMatch(after: time)
        }
    }

    /// The schedule for people, as the dashboard and the `schedule` field of
    /// the entry's State document show it: `every 60s` (whole seconds) or
    /// `cron 0 3 * * *` (the expression as given).
    ///
    /// Unlike ``description`` (`cron '0 3 * * *'`, part of an entry's default
    /// name and so of its claim key, which must not change), the expression is
    /// not quoted.
    public var summary: String {
        switch self {
        case .every(let interval): return "every \(interval.components.seconds)s"
        case .cron(let expression): return "cron \(expression.text)"
        }
    }

    public var description: String {
        switch self {
        // Part of an entry's default name, the key of its claims in the
        // shared State: `every 60s` as before intervals were Durations.
        case .every(let interval): return "every \(interval.components.seconds)s"
        case .cron(let expression): return "cron '\(expression.text)'"
        }
    }
}

func floorDiv(_ a: Int64, _ b: Int64) -> Int64 {
    let q = a / b
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q
}

/// A standard 5-field cron expression: `minute hour day-of-month month
/// day-of-week`, evaluated in UTC.
///
/// Each field is `*`, a number, a range `a-b`, a step `*/n` or `a-b/n` or
/// `a/n` (from `a` to the field's maximum), or a comma-separated list of
/// these. Ranges: minute 0-59, hour 0-23, day of month 1-31, month 1-12, day
/// of week 0-7 (0 and 7 are Sunday). No names (`JAN`, `MON`), no `@daily`,
/// no `L`, `W`, `#`, `?`. As in Vixie cron, when both day of month and day of
/// week are restricted (neither starts with `*`), a day matches if either
/// matches.
public struct CronExpression: Sendable, Hashable {
    public struct ParseError: Error, Sendable, Hashable, CustomStringConvertible {
        public var description: String
    }

    /// The expression as given.
    public let text: String
    public let minutes: Set<Int>
    public let hours: Set<Int>
    public let daysOfMonth: Set<Int>
    public let months: Set<Int>
    /// 0-6, Sunday 0 (a 7 is stored as 0).
    public let daysOfWeek: Set<Int>
    let dayOfMonthRestricted: Bool
    let dayOfWeekRestricted: Bool

    public init(parsing text: String) throws {
        let fields = text.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
        guard fields.count == 5 else {
            throw ParseError(description: "cron expression '\(text)': expected 5 fields (minute hour day month weekday), got \(fields.count)")
        }
        self.text = text
        minutes = try Self.parseField(fields[0], 0...59, "minute", text)
        hours = try Self.parseField(fields[1], 0...23, "hour", text)
        daysOfMonth = try Self.parseField(fields[2], 1...31, "day of month", text)
        months = try Self.parseField(fields[3], 1...12, "month", text)
        daysOfWeek = Set(try Self.parseField(fields[4], 0...7, "day of week", text).map { $0 % 7 })
        dayOfMonthRestricted = !fields[2].hasPrefix("*")
        dayOfWeekRestricted = !fields[4].hasPrefix("*")
    }

    static func parseField(_ field: String, _ bounds: ClosedRange<Int>, _ name: String, _ text: String) throws -> Set<Int> {
        func fail(_ why: String) -> ParseError {
            ParseError(description: "cron expression '\(text)': \(name) field '\(field)': \(why)")
        }
        func number(_ s: Substring) throws -> Int {
            guard !s.isEmpty, s.allSatisfy({ $0.isASCII && $0.isNumber }), let value = Int(s) else {
                throw fail("'\(s)' is not a number")
            }
            guard bounds.contains(value) else { throw fail("\(value) is outside \(bounds.lowerBound)-\(bounds.upperBound)") }
            return value
        }
        var result = Set<Int>()
        for part in field.split(separator: ",", omittingEmptySubsequences: false) {
            let pieces = part.split(separator: "/", omittingEmptySubsequences: false)
            guard pieces.count <= 2 else { throw fail("more than one '/'") }
            var step = 1
            if pieces.count == 2 {
                guard let value = Int(pieces[1]), value > 0, pieces[1].allSatisfy({ $0.isASCII && $0.isNumber }) else {
                    throw fail("step '\(pieces[1])' is not a positive number")
                }
                step = value
            }
            let range: ClosedRange<Int>
            let base = pieces[0]
            if base == "*" {
                range = bounds
            } else if let dash = base.firstIndex(of: "-") {
                let low = try number(base[..<dash])
                let high = try number(base[base.index(after: dash)...])
                guard low <= high else { throw fail("range \(low)-\(high) is reversed") }
                range = low...high
            } else {
                let value = try number(base)
                range = pieces.count == 2 ? value...bounds.upperBound : value...value
            }
            result.formUnion(stride(from: range.lowerBound, through: range.upperBound, by: step))
        }
        return result
    }

    /// Whether the day (days since the epoch) matches the day fields.
    func matchesDay(_ day: Int64) -> Bool {
        let (_, month, dayOfMonth) = civilFromDays(day)
        guard months.contains(month) else { return false }
        let weekday = Int(((day % 7) + 11) % 7)  // 1970-01-01 was a Thursday (4)
        let domMatch = daysOfMonth.contains(dayOfMonth)
        let dowMatch = daysOfWeek.contains(weekday)
        if dayOfMonthRestricted && dayOfWeekRestricted { return domMatch || dowMatch }
        return domMatch && dowMatch
    }

    /// The first whole minute strictly after `time` (Unix seconds) that the
    /// expression matches, within the next 8 years; nil if none.
    public func nextMatch(after time: Int64) -> Int64? {
        var minute = floorDiv(time, 60) + 1  // minutes since the epoch
        let limit = minute + 8 * 366 * 1440
        while minute < limit {
            let day = floorDiv(minute, 1440)
            guard matchesDay(day) else {
                minute = (day + 1) * 1440
                continue
            }
            let minuteOfDay = Int(minute - day * 1440)
            let hour = minuteOfDay / 60
            guard hours.contains(hour) else {
                minute = day * 1440 + Int64(hour + 1) * 60
                continue
            }
            if minutes.contains(minuteOfDay % 60) { return minute * 60 }
            minute += 1
        }
        return nil
    }
}

/// (year, month 1-12, day 1-31) of a day counted from 1970-01-01 (H. Hinnant's
/// civil_from_days).
func civilFromDays(_ days: Int64) -> (Int64, Int, Int) {
    let z = days + 719_468
    let era = floorDiv(z, 146_097)
    let doe = z - era * 146_097
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
    let mp = (5 * doy + 2) / 153
    let d = Int(doy - (153 * mp + 2) / 5 + 1)
    let m = Int(mp < 10 ? mp + 3 : mp - 9)
    return (yoe + era * 400 + (m <= 2 ? 1 : 0), m, d)
}
