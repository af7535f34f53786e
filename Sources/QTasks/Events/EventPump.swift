import DequeModule
import Logging
import Metrics
import Synchronization

/// One sink's bounded buffer of events, and the loop that hands them over
/// in batches (``TaskEventRecording`` says the policy).
final class EventPump: Sendable {
    let sink: any TaskEventSink
    /// The sink in logs and in the metrics' `sink` label: its description
    /// (stores redact their passwords in it).
    let label: String
    private let recording: TaskEventRecording
    private let logger: Logger
    private let dropped: Counter
    private let failedWrites: Counter

    private struct State {
        var buffer = Deque<TaskEvent>()
        /// Dropped since the last warning.
        var droppedSinceLog = 0
        var droppedTotal = 0
        var failing = false
        var lastLossLog: ContinuousClock.Instant?
    }

    private let state = Mutex(State())
    /// Rings when events arrive, so that an idle pump writes them at once:
    /// a quiet worker's first record of a task (its `process` state, with
    /// its arguments as JSON) is in the store a moment after the task
    /// starts, not up to ``TaskEventRecording/flushInterval`` later. A
    /// Python QTasks client that reads right after `add_task` then meets
    /// our record sooner (docs/interop.md, "Python QTasks").
    private let arrivals = PumpWakeUp()

    init(sink: any TaskEventSink, recording: TaskEventRecording, logger: Logger, metricsFactory: (any MetricsFactory)?) {
        self.sink = sink
        self.label = String(describing: sink)
        self.recording = recording
        self.logger = logger
        let factory = metricsFactory ?? MetricsSystem.factory
        self.dropped = Counter(label: EventPump.droppedMetric, dimensions: [("sink", label)], factory: factory)
        self.failedWrites = Counter(label: EventPump.failedWritesMetric, dimensions: [("sink", label)], factory: factory)
    }

    /// `qtasks_events_dropped_total{sink}`: events that were never recorded
    /// (buffer full, or left at shutdown).
    static let droppedMetric = "qtasks_events_dropped_total"
    /// `qtasks_event_writes_failed_total{sink}`: batches a sink refused.
    static let failedWritesMetric = "qtasks_event_writes_failed_total"

    /// After a write, how long the pump lets events gather before it
    /// writes again.
    static let gatheringTime: Duration = .milliseconds(5)

    /// Events dropped since the pump started.
    var droppedTotal: Int { state.withLock { $0.droppedTotal } }

    /// Events waiting.
    var buffered: Int { state.withLock { $0.buffer.count } }

    /// Appends events; past the capacity the oldest go.
    func append(_ events: [TaskEvent]) {
        insert { $0.append(contentsOf: events) }
        arrivals.ring()
    }

    /// Changes the buffer, then drops the oldest events past the capacity
    /// and counts them.
    private func insert(_ change: (inout Deque<TaskEvent>) -> Void) {
        let capacity = max(1, recording.bufferCapacity)
        let overflow = state.withLock { state -> Int in
            change(&state.buffer)
            let overflow = state.buffer.count - capacity
            guard overflow > 0 else { return 0 }
            state.buffer.removeFirst(overflow)
            state.droppedSinceLog += overflow
            state.droppedTotal += overflow
            return overflow
        }
        if overflow > 0 { dropped.increment(by: overflow) }
    }

    /// Takes up to ``TaskEventRecording/maxBatchSize`` events, oldest first.
    private func take() -> [TaskEvent] {
        let limit = max(1, recording.maxBatchSize)
        return state.withLock { state in
            let count = min(limit, state.buffer.count)
            let batch = Array(state.buffer.prefix(count))
            state.buffer.removeFirst(count)
            return batch
        }
    }

    /// Puts a batch that failed back in front; past the capacity the
    /// oldest go.
    private func putBack(_ batch: [TaskEvent]) {
        insert { $0.insert(contentsOf: batch, at: 0) }
    }

    /// Drops everything left (the shutdown deadline passed).
    private func dropAll() -> Int {
        let count = state.withLock { state -> Int in
            let count = state.buffer.count
            state.buffer.removeAll()
            state.droppedTotal += count
            return count
        }
        if count > 0 { dropped.increment(by: count) }
        return count
    }

    /// Hands batches to the sink until `stop` fired and the buffer is empty,
    /// or the shutdown deadline passed.
    func run(stop: ShutdownSignal, deadline: @Sendable () -> ContinuousClock.Instant?) async {
        var failures = 0
        while true {
            let batch = take()
            if batch.isEmpty {
                if stop.isFired { return }
                // Idle: the next event is written as soon as it comes.
                await arrivals.wait(atMost: recording.flushInterval)
                continue
            }
            do {
                try await sink.record(batch)
                if failures > 0 { recovered(after: failures) }
                failures = 0
                // A full batch means more is waiting: write it at once.
                // Otherwise events that come within the next few
                // milliseconds join one batch (under load that is where
                // batching happens); later ones are written as they come.
                if batch.count < recording.maxBatchSize, !stop.isFired {
                    let gather = min(recording.flushInterval, Self.gatheringTime)
                    try? await Task.sleep(for: gather)
                    await arrivals.wait(atMost: recording.flushInterval - gather)
                }
            } catch {
                failures += 1
                failedWrites.increment()
                putBack(batch)
                noteFailure(error, failures: failures)
                if stop.isFired, let deadline = deadline(), ContinuousClock.now >= deadline {
                    let left = dropAll()
                    logger.error(
                        "shutdown: events could not be recorded in time; dropped",
                        metadata: ["sink": .string(label), "dropped": .stringConvertible(left), "error": "\(error)"])
                    return
                }
                // 0.5 s doubling to 5 s; never past the shutdown deadline.
                var pause = Duration.milliseconds(500) * (1 << min(failures - 1, 4))
                if pause > .seconds(5) { pause = .seconds(5) }
                if stop.isFired, let deadline = deadline() {
                    pause = min(pause, max(.zero, deadline - ContinuousClock.now))
                }
                try? await Task.sleep(for: pause)
            }
        }
    }

    /// A heartbeat write failed: logged like a failed batch.
    func heartbeatFailed(_ error: any Error) {
        failedWrites.increment()
        noteFailure(error, failures: 1)
    }

    /// Warns at the first failure, then at most once per
    /// ``TaskEventRecording/lossLogInterval``, with the drops so far.
    private func noteFailure(_ error: any Error, failures: Int) {
        let now = ContinuousClock.now
        let report = state.withLock { state -> (dropped: Int, buffered: Int)? in
            state.failing = true
            if let last = state.lastLossLog, now - last < recording.lossLogInterval { return nil }
            state.lastLossLog = now
            defer { state.droppedSinceLog = 0 }
            return (state.droppedSinceLog, state.buffer.count)
        }
        guard let report else { return }
        logger.warning(
            "cannot record task events; keeping them and trying again (acks go on)",
            metadata: [
                "sink": .string(label),
                "error": "\(error)",
                "failed_attempts": .stringConvertible(failures),
                "buffered": .stringConvertible(report.buffered),
                "dropped_since_last_warning": .stringConvertible(report.dropped),
            ])
    }

    private func recovered(after failures: Int) {
        let total = state.withLock { state -> Int in
            state.failing = false
            state.lastLossLog = nil
            return state.droppedTotal
        }
        logger.notice(
            "task events recorded again",
            metadata: ["sink": .string(label), "failed_attempts": .stringConvertible(failures), "dropped_total": .stringConvertible(total)])
    }
}

/// A doorbell for one waiter: ``ring()`` ends the current (or next)
/// ``wait(atMost:)`` early.
final class PumpWakeUp: Sendable {
    private struct State {
        var rung = false
        var waiter: CheckedContinuation<Void, Never>?
    }

    private let state = Mutex(State())

    func ring() {
        let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
            guard let waiter = state.waiter else {
                state.rung = true
                return nil
            }
            state.waiter = nil
            return waiter
        }
        waiter?.resume()
    }

    /// Returns when rung (or rung since the last wait), after `limit`, or
    /// when the task is cancelled.
    func wait(atMost limit: Duration) async {
        await withTaskGroup(of: Void.self) { group in
            group.addTask { try? await Task.sleep(for: limit) }
            group.addTask { await self.waitForRing() }
            await group.next()
            group.cancelAll()
        }
    }

    private func waitForRing() async {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let now = state.withLock { state -> Bool in
                    if state.rung || Task.isCancelled {
                        state.rung = false
                        return true
                    }
                    state.waiter = continuation
                    return false
                }
                if now { continuation.resume() }
            }
        } onCancel: {
            let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
                defer { state.waiter = nil }
                return state.waiter
            }
            waiter?.resume()
        }
    }
}
