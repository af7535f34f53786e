import Foundation
import Logging
import Metrics
import Synchronization
import Tracing

/// The worker's recorder of task events (``TaskEventRecording``): a
/// middleware that turns each delivery into events and appends them to one
/// ``EventPump`` per sink, plus the background loops that write them and
/// send heartbeats. Made by the ``Worker`` when
/// ``WorkerConfiguration/events`` is set.
final class TaskEventRecorder: TaskMiddleware, Sendable {
    private let recording: TaskEventRecording
    private let pumps: [EventPump]
    private let secretArguments: Set<String>
    private let tracer: any Tracer
    private let logger: Logger
    private let queues: [String]
    private let concurrency: Int
    private let startedAt = Date()
    private let host = ProcessInfo.processInfo.hostName
    private let pid = Int(ProcessInfo.processInfo.processIdentifier)
    private let stop = ShutdownSignal()
    private let flushDeadline = Mutex<ContinuousClock.Instant?>(nil)

    private struct Counts {
        var inFlight = 0
        var processed = 0
        var failed = 0
        var retried = 0
    }

    private let counts = Mutex(Counts())

    init(recording: TaskEventRecording, app: TaskApp, configuration: WorkerConfiguration) {
        self.recording = recording
        self.logger = configuration.logger
        self.pumps = recording.sinks.map {
            EventPump(sink: $0, recording: recording, logger: configuration.logger, metricsFactory: configuration.metricsFactory)
        }
        self.secretArguments = app.tasksWithSecretArguments
        self.tracer = configuration.effectiveTracer
        self.queues = configuration.queues
        self.concurrency = configuration.effectiveConcurrency
    }

    /// What a delivery's `run` hook learned, for its `process` hook.
    private final class AttemptNotes: Sendable {
        let received = Mutex(false)
        @TaskLocal static var current: AttemptNotes?
    }

    // MARK: - Middleware

    func process(_ delivery: Delivery, next: (Delivery) async -> TaskReport) async -> TaskReport {
        let receivedAt = Date()
        counts.withLock { $0.inFlight += 1 }
        let notes = AttemptNotes()
        let report = await AttemptNotes.$current.withValue(notes) { await next(delivery) }
        let result = report.result
        let attempt = result.retry + 1
        var events: [TaskEvent] = []
        if !notes.received.withLock({ $0 }) {
            // Rejected before the handler ran (bad input): no `run` hook.
            events.append(event(.received, result, queue: delivery.queue, attempt: attempt, at: receivedAt))
        }
        let now = Date()
        func end(_ kind: TaskEvent.Kind) -> TaskEvent {
            var event = event(kind, result, queue: delivery.queue, attempt: attempt, at: now)
            event.duration = report.duration
            return event
        }
        var failed = false
        var retried = false
        switch report.outcome {
        case _ where !report.isSettled:
            // Its result or retry could not be applied: it runs again.
            events.append(end(.requeued))
        case .cancelled:
            events.append(end(.requeued))
        case .completed:
            var succeeded = end(.succeeded)
            succeeded.result = result.returning ?? .null
            events.append(succeeded)
        case .cancelledByTask:
            events.append(end(.cancelled))
        case .retry(_, let failure, _):
            var event = end(.retried)
            event.failure = Self.failure(failure, result)
            event.retryDelay = report.retryDelay
            events.append(event)
            retried = true
        case .failed(_, let failure), .rejected(_, let failure):
            var failedEvent = end(.failed)
            failedEvent.failure = Self.failure(failure, result)
            var deadLettered = end(.deadLettered)
            deadLettered.failure = failedEvent.failure
            deadLettered.deadLetterQueue = QueueNaming.deadLetterQueue(for: delivery.queue)
            events.append(failedEvent)
            events.append(deadLettered)
            failed = true
        }
        counts.withLock { counts in
            counts.inFlight -= 1
            counts.processed += 1
            if failed { counts.failed += 1 }
            if retried { counts.retried += 1 }
        }
        emit(events)
        return report
    }

    func run(_ context: TaskContext, next: (TaskContext) async throws -> JSONValue) async throws -> JSONValue {
        let now = Date()
        AttemptNotes.current?.received.withLock { $0 = true }
        let arguments: RecordedArguments =
            secretArguments.contains(context.taskName)
            ? .omitted
            : .bounded(
                args: context.arguments.args, kwargs: context.arguments.kwargs, maxBytes: recording.maxArgumentBytes,
                sourceSize: context.arguments.bodySize)
        let traceID = currentTraceID()
        var received = TaskEvent(
            kind: .received, uuid: context.uuid, taskName: context.taskName, queue: context.queue,
            attempt: context.attempt, workerID: recording.workerID, timestamp: now,
            createdAt: Date(timeIntervalSince1970: context.createdAt), priority: context.priority, traceID: traceID)
        received.arguments = arguments
        var started = received
        started.kind = .started
        started.arguments = nil
        emit([received, started])
        return try await next(context)
    }

    private func event(_ kind: TaskEvent.Kind, _ result: TaskResult, queue: String, attempt: Int, at time: Date) -> TaskEvent {
        TaskEvent(
            kind: kind, uuid: result.uuid, taskName: result.taskName, queue: queue, attempt: attempt,
            workerID: recording.workerID, timestamp: time,
            createdAt: result.createdAt > 0 ? Date(timeIntervalSince1970: result.createdAt) : nil,
            traceID: currentTraceID())
    }

    private static func failure(_ failure: TaskFailure, _ result: TaskResult) -> TaskEvent.Failure {
        TaskEvent.Failure(type: failure.errorType, message: failure.message, traceback: result.traceback ?? failure.traceback)
    }

    /// The trace id of the delivery's span (W3C `traceparent`'s second
    /// field), when a tracer made one.
    private func currentTraceID() -> String? {
        guard let context = ServiceContext.current else { return nil }
        var headers: [String: HeaderValue] = [:]
        tracer.inject(context, into: &headers, using: HeaderInjector())
        guard case .string(let traceparent)? = headers["traceparent"] else { return nil }
        let fields = traceparent.split(separator: "-")
        return fields.count >= 2 ? String(fields[1]) : nil
    }

    private func emit(_ events: [TaskEvent]) {
        for pump in pumps { pump.append(events) }
    }

    // MARK: - Background

    /// Writes batches and sends heartbeats until ``finish()``.
    func run() async {
        await withTaskGroup(of: Void.self) { group in
            for pump in pumps {
                group.addTask {
                    await pump.run(stop: self.stop, deadline: { self.flushDeadline.withLock { $0 } })
                }
            }
            group.addTask { await self.sendHeartbeats() }
        }
    }

    /// Stops: a last heartbeat (offline), then the buffers drain within
    /// ``TaskEventRecording/shutdownFlushTimeout``. ``run()`` returns after.
    func finish() {
        flushDeadline.withLock { $0 = ContinuousClock.now + recording.shutdownFlushTimeout }
        stop.fire()
    }

    /// Events dropped by every sink so far.
    var droppedEvents: Int { pumps.reduce(0) { $0 + $1.droppedTotal } }

    private func sendHeartbeats() async {
        while true {
            let online = !stop.isFired
            let beat = heartbeat(online: online)
            await withTaskGroup(of: Void.self) { group in
                for pump in pumps {
                    group.addTask {
                        do {
                            try await pump.sink.recordHeartbeat(beat)
                        } catch {
                            pump.heartbeatFailed(error)
                        }
                    }
                }
            }
            if !online { return }
            _ = await sleepOrStop(recording.heartbeatInterval)
        }
    }

    /// Sleeps; returns early when stop fires.
    private func sleepOrStop(_ duration: Duration) async -> Bool {
        await withTaskGroup(of: Bool.self) { [stop] group in
            group.addTask {
                (try? await Task.sleep(for: duration)) != nil
            }
            group.addTask { await stop.wait() == false }
            let slept = await group.next() ?? false
            group.cancelAll()
            return slept
        }
    }

    func heartbeat(online: Bool) -> WorkerHeartbeat {
        let counts = counts.withLock { $0 }
        let now = Date()
        return WorkerHeartbeat(
            workerID: recording.workerID, host: host, pid: pid, queues: queues,
            concurrency: concurrency, inFlight: counts.inFlight, processed: counts.processed, failed: counts.failed,
            retried: counts.retried, startedAt: startedAt, sentAt: now,
            expiresAt: online ? now.addingTimeInterval(Seconds.double(recording.heartbeatTimeToLive)) : now,
            isOnline: online)
    }
}
