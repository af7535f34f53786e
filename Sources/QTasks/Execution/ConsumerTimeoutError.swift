import Synchronization

/// A task was still running when its delivery came close to the broker's
/// delivery acknowledgement timeout (RabbitMQ's `consumer_timeout`), and
/// the worker stopped it.
///
/// Left alone, RabbitMQ would close the consuming channel at that timeout
/// (`406 PRECONDITION_FAILED - delivery acknowledgement on channel N timed
/// out`), cancelling every task of that channel, and redeliver the message:
/// the task would run again and again, never finishing and never
/// dead-lettered. Instead the worker cancels it a margin before the
/// timeout (``WorkerConfiguration/consumerTimeout``,
/// ``WorkerConfiguration/consumerTimeoutMargin``) and it fails like any
/// error: retried if its ``RetryPolicy`` says so, else an `error` result and
/// a dead letter whose `x-qtasks-error-type` is `ConsumerTimeoutError`.
///
/// A task that needs longer: ``TaskOptions/acknowledgement`` `.onStart`
/// (at most once), or a longer timeout for its queue (docs/reliability.md,
/// "Long tasks and consumer_timeout").
///
/// In the result: `"ConsumerTimeoutError: task 'report' was still running
/// 1740 s after its delivery; RabbitMQ's consumer_timeout is 1800 s, ..."`.
public struct ConsumerTimeoutError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The task that ran too long.
    public var taskName: String
    /// The broker's timeout the worker worked with.
    public var consumerTimeout: Duration
    /// How long after its delivery the task was stopped: `consumerTimeout`
    /// minus the margin.
    public var deadline: Duration

    public init(taskName: String, consumerTimeout: Duration, deadline: Duration) {
        self.taskName = taskName
        self.consumerTimeout = consumerTimeout
        self.deadline = deadline
    }

    public var description: String {
        "task '\(taskName)' was still running \(secondsText(deadline)) after its delivery; RabbitMQ's consumer_timeout is "
            + "\(secondsText(consumerTimeout)), after which the broker closes the channel and runs the task again: "
            + "stopped by the worker instead (a longer task needs TaskOptions(acknowledgement: .onStart) or a longer consumer timeout for its queue)"
    }
}

/// `1740 s`, `9.5 s`: seconds, as ``TaskTimeLimitError`` says them.
private func secondsText(_ duration: Duration) -> String {
    let seconds = Seconds.logValue(duration)
    if let whole = Int64(exactly: seconds) { return "\(whole) s" }
    return "\(seconds) s"
}

/// The worker's deadline for acknowledging a delivery, from the broker's
/// `consumer_timeout`: configured (``WorkerConfiguration/consumerTimeout``),
/// or learnt from the broker itself when it closed a channel for it (its
/// reply says `Timeout value used: N ms`), whichever is shorter. Shared by
/// the ``Worker`` and its ``TaskRunner``.
final class ConsumerTimeoutBudget: Sendable {
    private let configured: Duration?
    private let margin: Duration?
    private let learnt = Mutex<Duration?>(nil)

    init(configured: Duration?, margin: Duration?) {
        self.configured = configured.flatMap { $0 > .zero ? $0 : nil }
        self.margin = margin
    }

    /// The timeout in force: the shorter of the configured one and the one
    /// learnt from the broker; nil when neither is known.
    var timeout: Duration? {
        let learnt = self.learnt.withLock { $0 }
        switch (configured, learnt) {
        case (let a?, let b?): return min(a, b)
        case (let a?, nil): return a
        case (nil, let b?): return b
        case (nil, nil): return nil
        }
    }

    /// How long after its delivery a task is stopped: the timeout minus
    /// the margin (``margin(for:)`` when none was configured); nil when
    /// there is no timeout.
    var deadline: Duration? {
        guard let timeout else { return nil }
        let margin = self.margin ?? Self.margin(for: timeout)
        return max(timeout - margin, timeout / 2)
    }

    /// The default margin: a tenth of the timeout, at least 1 s and at
    /// most 60 s (3 min → 18 s, 30 min → 60 s, 10 s → 1 s). Enough to
    /// cancel the task, publish its error result and dead letter and send
    /// the ack before the broker's check.
    static func margin(for timeout: Duration) -> Duration {
        min(max(timeout / 10, .seconds(1)), .seconds(60))
    }

    /// Adopts the broker's timeout when it is shorter than the one in
    /// force; true when it was (the caller logs it).
    func learn(_ timeout: Duration) -> Bool {
        guard timeout > .zero else { return false }
        let current = self.timeout
        if let current, current <= timeout { return false }
        learnt.withLock { $0 = timeout }
        return true
    }

    /// The timeout a RabbitMQ reply names: `406 PRECONDITION_FAILED -
    /// delivery acknowledgement on channel 1 timed out. Timeout value used:
    /// 10000 ms. ...` (RabbitMQ 3.8.15 to 4.x); nil for any other reply.
    static func brokerTimeout(inReply text: String) -> Duration? {
        guard text.contains("delivery acknowledgement"), let match = text.firstMatch(of: Self.pattern),
              let milliseconds = Int64(match.output.1)
        else { return nil }
        return .milliseconds(milliseconds)
    }

    nonisolated(unsafe) private static let pattern = #/Timeout value used: (\d+) ms/#
}
