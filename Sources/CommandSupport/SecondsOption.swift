import ArgumentParser
import QTasks

/// Times on the command line: the user types seconds (`--wait 2.5`), the
/// command holds a `Duration` from the moment the option is parsed.
///
/// ```swift
/// @Option(help: "Seconds to wait (default: 30).",
///         transform: SecondsOption.parser("--wait must be seconds from 0 to 60") { (0...60).contains($0) })
/// var wait: Duration = .seconds(30)
/// ```
public enum SecondsOption {
    /// An `@Option(transform:)` that reads a number of seconds and converts
    /// it to a `Duration` (to the nanosecond).
    ///
    /// - Parameters:
    ///   - requirement: the usage error (exit 64) when the text is not a
    ///     number `accepts` takes; name the option in it.
    ///   - accepts: whether a number of seconds is allowed; NaN and
    ///     infinity are refused before it is asked.
    public static func parser(
        _ requirement: String, accepting accepts: @escaping @Sendable (Double) -> Bool
    ) -> @Sendable (String) throws -> Duration {
        { text in
            guard let seconds = Double(text), seconds.isFinite, accepts(seconds) else {
                throw ValidationError(requirement)
            }
            return Seconds.duration(seconds)
        }
    }
}
