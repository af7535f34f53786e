import CRabbitMQ
import Glibc

// The AMQP configuration's times are `Duration`s; rabbitmq-c takes a
// `timeval` for timeouts and whole seconds for the heartbeat. These
// conversions are the only place they become numbers (AMQP does not
// depend on QTasks, whose `Seconds` does the same for the other modules).

extension Duration {
    /// In seconds, for messages (`timed out after 10.0 s`) and C calls.
    var secondsValue: Double {
        let (seconds, attoseconds) = components
        return Double(seconds) + Double(attoseconds) / 1e18
    }

    /// The heartbeat interval rabbitmq-c negotiates, in whole seconds: a
    /// fraction rounds up (a 1.5 s heartbeat is 2 s, never 0, which would
    /// turn heartbeats off), within 0...65535 (the protocol's short).
    var heartbeatSeconds: Int32 {
        let (seconds, attoseconds) = components
        let whole = seconds + (attoseconds > 0 ? 1 : 0)
        return Int32(min(max(whole, 0), 65535))
    }
}

extension timeval {
    /// A timeout from configuration: negative is 0, anything over a day is
    /// a day.
    init(_ duration: Duration) {
        let clamped = min(max(duration, .zero), .seconds(86_400))
        let (seconds, attoseconds) = clamped.components
        self.init(tv_sec: Int(seconds), tv_usec: Int(attoseconds / 1_000_000_000_000))
    }
}
