import QTasksRabbitMQ
import Testing

/// The rounding of retry delays to the fixed set of delay queues (no broker
/// needed).
@Suite struct RetryDelaysTests {
    @Test("Steps of the ladder are kept as they are", arguments: [
        (1.0, 1_000), (1.5, 1_500), (2.0, 2_000), (3.0, 3_000), (6.0, 6_000), (0.08, 80), (300.0, 300_000),
    ])
    func stepsAreExact(seconds: Double, milliseconds: Int) {
        #expect(RetryDelays.quantizedMilliseconds(.seconds(seconds)) == milliseconds)
    }

    @Test("Other delays go to the nearest step, within about 20 %", arguments: [0.011, 0.7, 1.2, 2.4, 7.0, 13.0, 95.5, 4321.0])
    func nearestStep(seconds: Double) {
        let rounded = Double(RetryDelays.quantizedMilliseconds(.seconds(seconds))) / 1000
        #expect(rounded / seconds > 0.8 && rounded / seconds < 1.25, "\(seconds) s -> \(rounded) s")
    }

    @Test func tinyNegativeAndHugeDelays() {
        #expect(RetryDelays.quantizedMilliseconds(.zero) == 0)
        #expect(RetryDelays.quantizedMilliseconds(.milliseconds(4)) == 0)
        #expect(RetryDelays.quantizedMilliseconds(.seconds(-5)) == 0)
        // Duration has no NaN or infinity; the largest one stands for both.
        #expect(RetryDelays.quantizedMilliseconds(.seconds(Int64.max)) == RetryDelays.maximumMilliseconds)
        #expect(RetryDelays.quantizedMilliseconds(.seconds(1_000_000_000_000)) == RetryDelays.maximumMilliseconds)
    }

    @Test func aBackoffFromOneSecondToFiveMinutesUsesFewQueues() {
        var delays = Set<Int>()
        var delay = 1.0
        while delay <= 300 {
            for jitter in stride(from: 0.8, through: 1.2, by: 0.01) {
                delays.insert(RetryDelays.quantizedMilliseconds(.seconds(delay * jitter)))
            }
            delay *= 2
        }
        #expect(delays.count <= 25, "\(delays.sorted())")
    }
}
