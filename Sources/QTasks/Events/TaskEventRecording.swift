import Foundation

/// Whether and how a ``Worker`` records task events and heartbeats
/// (``WorkerConfiguration/events``): to a result store, the events
/// exchange, or any ``TaskEventSink``.
///
/// Recording never changes what is delivered. Events go into a bounded
/// buffer per sink and are written in batches by a background task; a
/// delivery is acknowledged without waiting for them. A sink that fails
/// (Redis down, a disk full) gets its batch again after a pause (0.5 s
/// doubling to 5 s); meanwhile its buffer fills up to ``bufferCapacity``
/// events, then the oldest are dropped and counted
/// (`qtasks_events_dropped_total{sink}`), with one warning per
/// ``lossLogInterval`` saying how many. When the sink is back the buffer
/// drains (the worker catches up) and a notice says so. At graceful
/// shutdown the worker sends a last heartbeat (offline) and gives the
/// buffers ``shutdownFlushTimeout`` to drain; what is left is counted as
/// dropped.
///
/// ```swift
/// var configuration = WorkerConfiguration(queues: ["default"])
/// configuration.events = TaskEventRecording(sinks: [resultStore, eventPublisher])
/// ```
public struct TaskEventRecording: Sendable {
    /// Where events and heartbeats go; each has its own buffer, so one that
    /// is down does not hold the others back.
    public var sinks: [any TaskEventSink]
    /// This worker's id in events and heartbeats. Default
    /// `<host>.<pid>.<4 random hex digits>`: unique even when a restarted
    /// worker gets the pid of a dead one.
    public var workerID: String
    /// How often the worker sends a heartbeat. Default 5 s.
    public var heartbeatInterval: Duration
    /// How long a store keeps a heartbeat: a worker that stops sending them
    /// drops out of the live list after this long. Default 15 s (three
    /// intervals, so one late heartbeat does not make it flicker).
    public var heartbeatTimeToLive: Duration
    /// The most events buffered per sink before the oldest are dropped.
    /// Default 100,000 (at three events a task: some 30,000 tasks, a few
    /// seconds of a busy worker or a long outage of a quiet one).
    public var bufferCapacity: Int
    /// The most events handed to a sink in one call. Default 5,000.
    public var maxBatchSize: Int
    /// How long the background task waits between batches when there is
    /// little to write. Default 100 ms: a record is at most about that
    /// stale.
    public var flushInterval: Duration
    /// Arguments whose JSON text is longer than this are recorded truncated
    /// (``RecordedArguments``), in bytes. Default 4,096.
    public var maxArgumentBytes: Int
    /// How long graceful shutdown waits for the buffers to drain. Default 5 s.
    public var shutdownFlushTimeout: Duration
    /// At most one warning per sink per this interval about failed writes
    /// and dropped events. Default 30 s.
    public var lossLogInterval: Duration

    public init(
        sinks: [any TaskEventSink],
        workerID: String = TaskEventRecording.defaultWorkerID(),
        heartbeatInterval: Duration = .seconds(5),
        heartbeatTimeToLive: Duration? = nil,
        bufferCapacity: Int = 100_000,
        maxBatchSize: Int = 5_000,
        flushInterval: Duration = .milliseconds(100),
        maxArgumentBytes: Int = 4_096,
        shutdownFlushTimeout: Duration = .seconds(5),
        lossLogInterval: Duration = .seconds(30)
    ) {
        self.sinks = sinks
        self.workerID = workerID
        self.heartbeatInterval = heartbeatInterval
        self.heartbeatTimeToLive = heartbeatTimeToLive ?? heartbeatInterval * 3
        self.bufferCapacity = bufferCapacity
        self.maxBatchSize = maxBatchSize
        self.flushInterval = flushInterval
        self.maxArgumentBytes = maxArgumentBytes
        self.shutdownFlushTimeout = shutdownFlushTimeout
        self.lossLogInterval = lossLogInterval
    }

    /// `<host>.<pid>.<4 random hex digits>`.
    public static func defaultWorkerID() -> String {
        "\(ProcessInfo.processInfo.hostName).\(ProcessInfo.processInfo.processIdentifier).\(String(format: "%04x", UInt16.random(in: 0...UInt16.max)))"
    }
}
