@testable import AMQP
import Glibc
import Testing

/// The configuration's Durations as rabbitmq-c takes them (no broker needed).
@Suite struct DurationConversionTests {
    @Test func heartbeatsAreWholeSecondsRoundedUp() {
        #expect(Duration.seconds(60).heartbeatSeconds == 60)
        #expect(Duration.zero.heartbeatSeconds == 0, "0 turns heartbeats off")
        #expect(Duration.milliseconds(1500).heartbeatSeconds == 2)
        #expect(Duration.milliseconds(1).heartbeatSeconds == 1, "never rounded to off")
        #expect(Duration.seconds(-3).heartbeatSeconds == 0)
        #expect(Duration.seconds(100_000).heartbeatSeconds == 65535)
    }

    @Test func timeoutsAreTimevalsOfAtMostADay() {
        let timeout = timeval(.milliseconds(2500))
        #expect(timeout.tv_sec == 2 && timeout.tv_usec == 500_000)
        let negative = timeval(.seconds(-1))
        #expect(negative.tv_sec == 0 && negative.tv_usec == 0)
        let huge = timeval(.seconds(Int64.max))
        #expect(huge.tv_sec == 86_400 && huge.tv_usec == 0)
    }

    @Test func urlTimesAreRead() throws {
        let configuration = try AMQPConfiguration(url: "amqp://h/?heartbeat=0&connection_timeout=1")
        #expect(configuration.heartbeat == .zero)
        #expect(configuration.connectTimeout == .milliseconds(1))
        #expect(configuration.rpcTimeout == .seconds(30))
    }
}
