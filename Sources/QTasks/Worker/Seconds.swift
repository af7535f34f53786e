/// Turns a number of seconds from configuration or from a task into one
/// that `Duration` and `Task.sleep` accept: `Duration.seconds(_:)` traps on
/// an infinity or NaN, and a sleep of 1e300 s never ends.
enum Seconds {
    /// About 31 years: longer than anything meant, short enough for
    /// `Duration`.
    static let maximum = 1e9

    /// `seconds` within 0...``maximum``; NaN is 0, infinity is the maximum.
    static func clamped(_ seconds: Double) -> Double {
        guard !seconds.isNaN else { return 0 }
        return min(max(seconds, 0), maximum)
    }

    static func duration(_ seconds: Double) -> Duration {
        .seconds(clamped(seconds))
    }
}

extension Seconds {
    /// A duration in seconds, for log fields and the wire.
    static func double(_ duration: Duration) -> Double {
        Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
    }
}
