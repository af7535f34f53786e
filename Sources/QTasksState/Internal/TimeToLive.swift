import Foundation

/// Time-to-live arithmetic shared by the backends.
package enum TimeToLive {
    /// `ttl` in whole milliseconds, rounded up (Redis `PEXPIRE` resolution).
    ///
    /// - Throws: `invalidArgument` unless `ttl` is positive.
    package static func milliseconds(_ ttl: Duration, for state: StateID) throws(StateError) -> Int64 {
        guard ttl > .zero else {
            throw StateError(.invalidArgument, "time-to-live of state \(state) must be positive, got \(ttl)")
        }
        let (seconds, attoseconds) = ttl.components
        let (whole, remainder) = attoseconds.quotientAndRemainder(dividingBy: 1_000_000_000_000_000)
        let (product, overflow) = seconds.multipliedReportingOverflow(by: 1000)
        guard !overflow else { return Int64.max / 2 }
        return product + whole + (remainder > 0 ? 1 : 0)
    }

    /// Wall-clock time in milliseconds since 1970 (SQLite's `expires_at`,
    /// compared across processes).
    package static func nowMilliseconds() -> Int64 {
        Int64((Date().timeIntervalSince1970 * 1000).rounded(.down))
    }
}
