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
/// In the result: `"ConsumerTimeoutError: task 'report' had not finished
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
        "task '\(taskName)' had not finished \(secondsText(deadline)) after its delivery (its wait in the worker's prefetch buffer included); RabbitMQ's consumer_timeout is "
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
    /// Stops the tasks that reach their deadline.
    let watchdog = DeadlineWatchdog()

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
        return max(timeout - effectiveMargin(for: timeout), timeout / 2)
    }

    /// The configured margin, else ``margin(for:)``.
    func effectiveMargin(for timeout: Duration) -> Duration {
        margin ?? Self.margin(for: timeout)
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

/// Cancels the tasks whose delivery reached its consumer-timeout deadline.
///
/// One polling task (while any task is registered) instead of a timer per
/// task: a task group with a sleeping child around every handler cost about
/// 11 µs per task, a third of the worker's CPU per task (docs/performance.md);
/// this costs about 1 µs. A deadline is seen at most ``pollInterval`` late,
/// well within the margin before the broker's timeout.
final class DeadlineWatchdog: Sendable {
    private struct Entry {
        var deadline: ContinuousClock.Instant
        var fire: @Sendable () -> Void
    }

    private struct State {
        var entries: [UInt64: Entry] = [:]
        var nextID: UInt64 = 0
        var polling = false
        var interval: Duration = .milliseconds(250)
    }

    private let state = Mutex(State())

    /// At most 250 ms, a quarter of the smallest margin registered with (so
    /// that a deadline is never seen later than a quarter of its margin), at
    /// least 10 ms.
    static func pollInterval(margin: Duration) -> Duration {
        min(.milliseconds(250), max(.milliseconds(10), margin / 4))
    }

    /// Runs `operation` in a task of its own (started at once on this
    /// thread, `Task.immediate`: no thread hop for a handler that does not
    /// suspend) that is cancelled when `deadline` passes; then throws
    /// `error` (unless the operation returned all the same). Cancelling the
    /// caller cancels the operation too.
    func run<T: Sendable>(
        until deadline: ContinuousClock.Instant, margin: Duration, error: any Error & Sendable,
        _ operation: @escaping @Sendable () async throws -> T
    ) async throws -> T {
        let task: Task<T, any Error>
        if #available(macOS 26, iOS 26, tvOS 26, watchOS 26, *) {
            task = Task.immediate { try await operation() }
        } else {
            task = Task { try await operation() }
        }
        let fired = Mutex(false)
        let id = register(deadline, interval: Self.pollInterval(margin: margin)) {
            fired.withLock { $0 = true }
            task.cancel()
        }
        defer { deregister(id) }
        do {
            return try await withTaskCancellationHandler { try await task.value } onCancel: { task.cancel() }
        } catch let thrown {
            if fired.withLock({ $0 }) { throw error }
            throw thrown
        }
    }

    private func register(_ deadline: ContinuousClock.Instant, interval: Duration, fire: @escaping @Sendable () -> Void) -> UInt64 {
        let (id, start) = state.withLock { state -> (UInt64, Bool) in
            state.nextID += 1
            state.entries[state.nextID] = Entry(deadline: deadline, fire: fire)
            state.interval = state.entries.count == 1 ? interval : min(state.interval, interval)
            defer { state.polling = true }
            return (state.nextID, !state.polling)
        }
        // Detached: it must not inherit the task's cancellation or locals.
        if start { Task.detached { await self.poll() } }
        return id
    }

    private func deregister(_ id: UInt64) {
        _ = state.withLock { $0.entries.removeValue(forKey: id) }
    }

    /// Fires what is due every interval; ends once nothing is registered
    /// (the next registration starts it again).
    private func poll() async {
        while true {
            let interval = state.withLock { $0.interval }
            try? await Task.sleep(for: interval)
            let now = ContinuousClock.now
            let (due, idle) = state.withLock { state -> ([@Sendable () -> Void], Bool) in
                var due: [@Sendable () -> Void] = []
                for (id, entry) in state.entries where entry.deadline <= now {
                    due.append(entry.fire)
                    state.entries[id] = nil
                }
                if state.entries.isEmpty { state.polling = false }
                return (due, state.entries.isEmpty)
            }
            for fire in due { fire() }
            if idle { return }
        }
    }
}
