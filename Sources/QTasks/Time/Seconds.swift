/// Conversions between `Duration`, the type of every time in the package's
/// API, and `Double` seconds, the form times take where a number is needed:
/// on the wire (`x-qtasks-retry-delay`), in log metadata (`delay_s`,
/// `grace_period_s`), on the command line, and in the arithmetic `Duration`
/// has no operator for (`pow` in ``Backoff``).
///
/// Package-wide, not public: the brokers, the command-line tools and the
/// tests use it; users write `.seconds(…)` and `.milliseconds(…)`.
package enum Seconds {
    /// About 31 years: longer than any wait anybody means, short enough that
    /// a deadline `ContinuousClock.now + maximum` and `Task.sleep` work.
    /// Longer durations (and infinite or NaN seconds) are cut to it where
    /// the package waits.
    package static let maximum: Duration = .seconds(1_000_000_000)

    /// ``maximum`` in seconds.
    package static let maximumValue = 1e9

    /// `seconds` as a `Duration` within 0...``maximum``, rounded to the
    /// nanosecond (so that 0.4 is exactly `.milliseconds(400)`): NaN and
    /// negative values are zero, infinity and huge values the maximum.
    /// `Duration.seconds(_:)` itself traps on an infinity or NaN.
    package static func duration(_ seconds: Double) -> Duration {
        guard !seconds.isNaN else { return .zero }
        let clamped = min(max(seconds, 0), maximumValue)
        return .nanoseconds(Int64((clamped * 1e9).rounded()))
    }

    /// `duration` within 0...``maximum``: what a sleep or a deadline takes.
    package static func clamped(_ duration: Duration) -> Duration {
        min(max(duration, .zero), maximum)
    }

    /// `duration` in seconds, as exact as a `Double` holds it
    /// (`.milliseconds(400)` is 0.4).
    package static func double(_ duration: Duration) -> Double {
        let (seconds, attoseconds) = duration.components
        return Double(seconds) + Double(attoseconds) / 1e18
    }

    /// `duration` in seconds rounded to the millisecond: the value of the
    /// `*_s` log metadata (`delay_s`), which dashboards read as a number.
    package static func logValue(_ duration: Duration) -> Double {
        (double(duration) * 1000).rounded() / 1000
    }
}
