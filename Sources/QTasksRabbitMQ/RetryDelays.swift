import QTasks

/// The fixed set of delays a ``RabbitMQBroker`` can hold a message for.
///
/// RabbitMQ has no per-message delay that works in a shared queue (a
/// per-message TTL only expires at the head of its queue), so each delay
/// gets a queue of its own, `<queue>.retry.<milliseconds>`, whose
/// `x-message-ttl` is that delay and whose dead-letter target is the task
/// queue. To keep the number of such queues small, a requested delay is
/// rounded to the nearest of eight steps per decade (1, 1.5, 2, 3, 4, 5, 6,
/// 8 × 10ⁿ ms): at most about 20 % off, and a backoff from 1 s to 5 min
/// uses about 20 queues per task queue. Delays under 5 ms are no delay.
public enum RetryDelays {
    static let steps: [Double] = [1, 1.5, 2, 3, 4, 5, 6, 8]
    /// The longest delay, 30 days (RabbitMQ's TTL limit is about 49 days).
    public static let maximumMilliseconds = 30 * 24 * 3600 * 1000

    /// The delay actually applied for `delay`, in whole milliseconds (the
    /// unit of the retry queue's name and `x-message-ttl`); 0 means
    /// "publish straight to the task queue". A negative delay is 0, one
    /// over 30 days is ``maximumMilliseconds``.
    public static func quantizedMilliseconds(_ delay: Duration) -> Int {
        let milliseconds = Seconds.double(Seconds.clamped(delay)) * 1000
        if milliseconds < 5 { return 0 }
        if milliseconds >= Double(maximumMilliseconds) { return maximumMilliseconds }
        var best = 1.0
        var bestDistance = Double.infinity
        var scale = 1.0
        while scale <= milliseconds * 10 {
            for step in steps {
                let candidate = step * scale
                let distance = abs(log(candidate) - log(milliseconds))
                if distance < bestDistance {
                    bestDistance = distance
                    best = candidate
                }
            }
            scale *= 10
        }
        return min(Int(best.rounded()), maximumMilliseconds)
    }

    /// `<queue>.retry.<milliseconds>`.
    public static func queueName(for queue: String, milliseconds: Int) -> String {
        "\(queue).retry.\(milliseconds)"
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
