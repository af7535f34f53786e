/// Where a worker's task events and heartbeats go: a result store
/// (``ResultStore``), the events exchange (`RabbitMQEventPublisher` in
/// QTasksRabbitMQ), or one of your own.
///
/// The worker never awaits a sink while it processes a delivery: it
/// appends events to a bounded buffer per sink, and a background task hands
/// them over in batches (``TaskEventRecording``). A sink that throws gets
/// the same batch again after a pause; see
/// ``TaskEventRecording/bufferCapacity`` for what happens when it stays
/// down.
public protocol TaskEventSink: Sendable {
    /// Records a batch of events, in the order they happened (the events of
    /// one task are in order; several tasks interleave).
    ///
    /// - Throws: when the batch could not be recorded; the worker retries it
    ///   whole, so recording the same events twice must be harmless (a
    ///   store applies them as updates to the task's record).
    func record(_ events: [TaskEvent]) async throws

    /// Records a worker's heartbeat (``WorkerHeartbeat/isOnline`` false:
    /// the worker is leaving).
    func recordHeartbeat(_ heartbeat: WorkerHeartbeat) async throws
}
