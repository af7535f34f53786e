import QTasks
import Testing

/// The package's Duration <-> Double seconds conversions (the wire, log
/// metadata, command-line options), as pure values.
@Suite struct SecondsTests {
    @Test func secondsBecomeDurationsToTheNanosecond() {
        #expect(Seconds.duration(0.4) == .milliseconds(400))
        #expect(Seconds.duration(0.2 * 4) == .milliseconds(800))
        #expect(Seconds.duration(30) == .seconds(30))
        #expect(Seconds.duration(1e-10) == .zero)
    }

    @Test func secondsThatDurationCannotHoldAreCut() {
        #expect(Seconds.duration(.nan) == .zero)
        #expect(Seconds.duration(-5) == .zero)
        #expect(Seconds.duration(.infinity) == Seconds.maximum)
        #expect(Seconds.duration(1e300) == Seconds.maximum)
        #expect(Seconds.clamped(.seconds(Int64.max)) == Seconds.maximum)
        #expect(Seconds.clamped(.seconds(-1)) == .zero)
        #expect(Seconds.clamped(.milliseconds(1500)) == .milliseconds(1500))
    }

    @Test func durationsBecomeTheSecondsTheWireAndTheLogsHadBefore() {
        #expect(Seconds.double(.milliseconds(400)) == 0.4)
        #expect(Seconds.double(.milliseconds(-1500)) == -1.5)
        #expect(Seconds.double(.seconds(30)) == 30)
        #expect(Seconds.logValue(.nanoseconds(1_234_567_890)) == 1.235)
    }
}
