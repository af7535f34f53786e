import Foundation

/// What a result store knows about one task: its latest status, its result
/// or error, and the events of its attempts. Built by applying the task's
/// ``TaskEvent``s in order (``apply(_:maxEvents:)``): every backend keeps
/// the same record for the same events.
///
/// The statuses are Python QTasks' (`new`, `process`, `success`, `error`,
/// `cancel`) plus `retry` between attempts (``TaskStatus``).
public struct TaskRecord: Sendable, Hashable, Codable {
    public var uuid: String
    public var taskName: String
    /// The queue of the latest delivery.
    public var queue: String
    public var status: TaskStatus
    /// As the message gave it (QTasks: lower runs first); 0 when unknown.
    public var priority: Int
    /// As recorded at `received` (bounded, or omitted for secret
    /// arguments); nil until then.
    public var arguments: RecordedArguments?
    /// The latest attempt: 1 for the first run.
    public var attempt: Int
    /// The worker of the latest attempt.
    public var workerID: String?
    /// The trace id of the latest attempt's span.
    public var traceID: String?
    /// When the task was created (its message's `created_at`), else first
    /// seen.
    public var createdAt: Date
    /// The time of the latest event.
    public var updatedAt: Date
    /// When the latest attempt started.
    public var startedAt: Date?
    /// When the task ended (success, error, cancel).
    public var finishedAt: Date?
    /// How long the latest finished attempt took, settling included.
    public var duration: Duration?
    /// For `success`: what the handler returned.
    public var result: JSONValue?
    /// For `error`, and for `retry` (the error that is being retried).
    public var failure: TaskEvent.Failure?
    /// For `retry`: the delay before the next attempt.
    public var retryDelay: Duration?
    /// Set when the message was dead-lettered: the queue it went to.
    public var deadLetterQueue: String?
    /// The events, oldest first, without arguments and results (the record
    /// has those); at most the store's
    /// ``ResultStoreConfiguration/maxEventsPerRecord``, the newest kept.
    public var events: [TaskEvent]

    public init(
        uuid: String, taskName: String, queue: String, status: TaskStatus, priority: Int = 0,
        arguments: RecordedArguments? = nil, attempt: Int = 1, workerID: String? = nil, traceID: String? = nil,
        createdAt: Date, updatedAt: Date, startedAt: Date? = nil, finishedAt: Date? = nil, duration: Duration? = nil,
        result: JSONValue? = nil, failure: TaskEvent.Failure? = nil, retryDelay: Duration? = nil,
        deadLetterQueue: String? = nil, events: [TaskEvent] = []
    ) {
        self.uuid = uuid
        self.taskName = taskName
        self.queue = queue
        self.status = status
        self.priority = priority
        self.arguments = arguments
        self.attempt = attempt
        self.workerID = workerID
        self.traceID = traceID
        self.createdAt = createdAt
        self.updatedAt = updatedAt
        self.startedAt = startedAt
        self.finishedAt = finishedAt
        self.duration = duration
        self.result = result
        self.failure = failure
        self.retryDelay = retryDelay
        self.deadLetterQueue = deadLetterQueue
        self.events = events
    }

    /// A new record from a task's first event (usually `received`).
    public init(first event: TaskEvent, maxEvents: Int = ResultStoreConfiguration.defaultMaxEventsPerRecord) {
        self.init(
            uuid: event.uuid, taskName: event.taskName, queue: event.queue, status: .new,
            priority: event.priority ?? 0, attempt: event.attempt,
            createdAt: event.createdAt ?? event.timestamp, updatedAt: event.timestamp)
        apply(event, maxEvents: maxEvents)
    }

    /// Whether the task ended: `success`, `error` or `cancel`.
    public var isFinished: Bool { status.isFinal }

    /// Applies one event of this task.
    ///
    /// Rules: `sent` and `received` fill in what was missing (arguments, priority,
    /// creation time); `started` makes the status `process`, `retried`
    /// `retry`, `requeued` `new`; `succeeded`, `failed` and `cancelled` make
    /// it `success`, `error` and `cancel`, and set the result or the error.
    /// Once the task ended, a later `received`, `started` or `requeued`
    /// (a duplicate delivery, which at-least-once allows) is kept in
    /// ``events`` but leaves the status alone; a later end event (that
    /// duplicate's outcome) replaces the outcome.
    public mutating func apply(_ event: TaskEvent, maxEvents: Int = ResultStoreConfiguration.defaultMaxEventsPerRecord) {
        if taskName.isEmpty { taskName = event.taskName }
        if !event.queue.isEmpty { queue = event.queue }
        if event.timestamp > updatedAt { updatedAt = event.timestamp }
        if let traceID = event.traceID { self.traceID = traceID }
        let ended = status.isFinal
        switch event.kind {
        case .received, .sent:
            if let arguments = event.arguments { self.arguments = arguments }
            if let priority = event.priority { self.priority = priority }
            if let created = event.createdAt { createdAt = created }
            if !ended { attempt = max(attempt, event.attempt) }
        case .started:
            if !ended {
                status = .process
                attempt = max(attempt, event.attempt)
                startedAt = event.timestamp
                workerID = event.workerID
            }
        case .requeued:
            if !ended { status = .new }
        case .retried:
            if !ended {
                status = .retry
                failure = event.failure
                retryDelay = event.retryDelay
                duration = event.duration
                workerID = event.workerID
            }
        case .succeeded:
            status = .success
            result = event.result ?? .null
            failure = nil
            retryDelay = nil
            end(event)
        case .failed:
            status = .error
            result = nil
            failure = event.failure
            retryDelay = nil
            end(event)
        case .deadLettered:
            status = .error
            deadLetterQueue = event.deadLetterQueue
            if failure == nil { failure = event.failure }
            if finishedAt == nil { end(event) }
        case .cancelled:
            status = .cancel
            result = nil
            retryDelay = nil
            end(event)
        default:
            break
        }
        var kept = event
        kept.arguments = nil
        kept.result = nil
        events.append(kept)
        let limit = max(1, maxEvents)
        if events.count > limit { events.removeFirst(events.count - limit) }
    }

    private mutating func end(_ event: TaskEvent) {
        finishedAt = event.timestamp
        attempt = max(attempt, event.attempt)
        workerID = event.workerID
        if let duration = event.duration { self.duration = duration }
    }

    /// The record as a result message, the shape ``TaskHandle`` decodes
    /// (`TaskHandle<Int>.value(of: record.taskResult)`): `returning` the
    /// result, `traceback` the error's.
    public var taskResult: TaskResult {
        TaskResult(
            uuid: uuid, taskName: taskName, status: status, returning: result,
            traceback: failure?.traceback, createdAt: createdAt.timeIntervalSince1970,
            updatedAt: updatedAt.timeIntervalSince1970, retry: max(0, attempt - 1))
    }
}
