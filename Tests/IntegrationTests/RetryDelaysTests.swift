import QTasksRabbitMQ
import Testing

/// The rounding of retry delays to the fixed set of delay queues (no broker
/// needed).
@Suite struct RetryDelaysTests {
    @Test("Steps of the ladder are kept as they are", arguments: [
        (1.0, 1_000), (1.5, 1_500), (2.0, 2_000), (3.0, 3_000), (6.0, 6_000), (0.08, 80), (300.0, 300_000),
    ])
    func stepsAreExact(seconds: Double, milliseconds: Int) {
        #expect(RetryDelays.quantizedMilliseconds(seconds) == milliseconds)
    }

    @Test("Other delays go to the nearest step, within about 20 %", arguments: [0.011, 0.7, 1.2, 2.4, 7.0, 13.0, 95.5, 4321.0])
    func nearestStep(seconds: Double) {
        let rounded = Double(RetryDelays.quantizedMilliseconds(seconds)) / 1000
        #expect(rounded / seconds > 0.8 && rounded / seconds < 1.25, "\(seconds) s -> \(rounded) s")
    }

    @Test func tinyNegativeAndInfiniteDelays() {
        #expect(RetryDelays.quantizedMilliseconds(0) == 0)
        #expect(RetryDelays.quantizedMilliseconds(0.004) == 0)
        #expect(RetryDelays.quantizedMilliseconds(-5) == 0)
        #expect(RetryDelays.quantizedMilliseconds(.nan) == 0)
        #expect(RetryDelays.quantizedMilliseconds(.infinity) == RetryDelays.maximumMilliseconds)
        #expect(RetryDelays.quantizedMilliseconds(1e12) == RetryDelays.maximumMilliseconds)
    }

    @Test func aBackoffFromOneSecondToFiveMinutesUsesFewQueues() {
        var delays = Set<Int>()
        var delay = 1.0
        while delay <= 300 {
            for jitter in stride(from: 0.8, through: 1.2, by: 0.01) {
                delays.insert(RetryDelays.quantizedMilliseconds(delay * jitter))
            }
            delay *= 2
        }
        #expect(delays.count <= 25, "\(delays.sorted())")
    }
}
