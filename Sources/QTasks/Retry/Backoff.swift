import Foundation

/// Exponential backoff with jitter and a cap: how long to wait before the
/// n-th retry of something (a task, a reconnect).
///
/// The n-th delay (n = 1 for the first retry) is
/// `min(initial × multiplier^(n-1), maximum)`, then reduced by a random
/// fraction of up to `jitter` of itself, so that many clients failing at
/// once do not retry in step ("equal"/"full" jitter for `jitter` 0.5 / 1).
/// The cap applies before the jitter: a delay never exceeds `maximum`.
public struct Backoff: Sendable, Hashable {
    /// The first delay. Default 1 s.
    public var initial: Duration
    /// Each delay is this many times the one before. Default 2.
    public var multiplier: Double
    /// No delay is longer. Default 300 s (5 minutes).
    public var maximum: Duration
    /// The largest fraction of a delay taken off at random, 0...1. Default
    /// 0.2 (each delay is 80–100 % of its nominal value); 0 makes delays
    /// exact (tests).
    public var jitter: Double

    /// Every parameter has the default documented on its property.
    public init(
        initial: Duration = .seconds(1), multiplier: Double = 2, maximum: Duration = .seconds(300), jitter: Double = 0.2
    ) {
        self.initial = initial
        self.multiplier = multiplier
        self.maximum = maximum
        self.jitter = jitter
    }

    /// The nominal delay before retry `n` (1 for the first), capped, before
    /// jitter.
    ///
    /// Always from zero to about 31 years (a billion seconds), to the
    /// nanosecond: a negative or huge `initial` or `maximum`, or an infinite
    /// or NaN `multiplier` (a bad configuration value), cannot make a delay
    /// the broker or `Task.sleep` would refuse.
    public func nominalDelay(forRetry n: Int) -> Duration {
        let initial = Seconds.double(Seconds.clamped(self.initial))
        let cap = max(initial, Seconds.double(Seconds.clamped(maximum)))
        let exponent = Double(max(0, n - 1))
        let factor = multiplier.isNaN ? 1 : max(1, multiplier)
        let raw = initial * pow(factor, exponent)
        return Seconds.duration(raw.isFinite ? min(raw, cap) : cap)
    }

    /// The delay before retry `n` with jitter applied.
    ///
    /// - Parameter random: a value in 0..<1 (tests pass a fixed one).
    public func delay(forRetry n: Int, random: Double = Double.random(in: 0..<1)) -> Duration {
        let jitter = self.jitter.isNaN ? 0 : min(max(self.jitter, 0), 1)
        let random = random.isNaN ? 0 : min(max(random, 0), 1)
        return Seconds.duration(Seconds.double(nominalDelay(forRetry: n)) * (1 - jitter * random))
    }
}
