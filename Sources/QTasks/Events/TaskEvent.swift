import Foundation

/// One step of a task's life as a worker saw it: what the worker records in
/// a result store (``ResultStore``) and publishes to the events exchange
/// (docs/results.md, "Events").
///
/// JSON form (the body of a message on the `qtasks.events` exchange, and of
/// a line of `qtasks events`): snake_case keys, times in Unix seconds,
/// durations in seconds; keys without a value are left out.
///
/// ```json
/// {"kind":"succeeded","uuid":"9b1…","task_name":"add","queue":"default",
///  "attempt":1,"worker_id":"host.4242.a1b2","timestamp":1733430000.123,
///  "duration":0.0021,"result":5}
/// ```
public struct TaskEvent: Sendable, Hashable, Codable {
    /// What happened.
    public struct Kind: RawRepresentable, Sendable, Hashable, Codable, CustomStringConvertible {
        /// The wire spelling (also the second word of the routing key).
        public let rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }
        public var description: String { rawValue }

        /// A producer sent the task (the `qtasks` command or the scheduler
        /// with a result store): the record is created with status `new`,
        /// so that a reader finds it before a worker took it. Python QTasks
        /// producers write the same record themselves.
        public static let sent = Kind(rawValue: "sent")
        /// The worker read the message and is about to run it (the record is
        /// created if missing: status `new`).
        public static let received = Kind(rawValue: "received")
        /// The handler started (status `process`).
        public static let started = Kind(rawValue: "started")
        /// The handler returned and its result was applied (status `success`).
        public static let succeeded = Kind(rawValue: "succeeded")
        /// The handler threw on its last attempt (or threw an error its retry
        /// policy does not retry), or the message was bad input (status
        /// `error`). The worker then dead-letters it: `dead_lettered` follows.
        public static let failed = Kind(rawValue: "failed")
        /// The message went to its dead-letter queue
        /// (``TaskEvent/deadLetterQueue``), after `failed`.
        public static let deadLettered = Kind(rawValue: "dead_lettered")
        /// The handler threw and the task will run again after
        /// ``TaskEvent/retryDelay`` (status `retry`).
        public static let retried = Kind(rawValue: "retried")
        /// The task cancelled itself (status `cancel`).
        public static let cancelled = Kind(rawValue: "cancelled")
        /// The worker stopped the run (shutdown past its grace period, lost
        /// connection) and returned the message to its queue: it runs again
        /// (status `new`).
        public static let requeued = Kind(rawValue: "requeued")

        /// Whether the task ended with this event (no attempt follows).
        public var isFinal: Bool {
            self == .succeeded || self == .failed || self == .deadLettered || self == .cancelled
        }
    }

    /// The error of a failed or retried attempt.
    public struct Failure: Sendable, Hashable, Codable {
        /// The error's Swift type (or the remote type a producer named).
        public var type: String
        public var message: String
        /// The result's `traceback` text (`Type: message`).
        public var traceback: String
        public init(type: String, message: String, traceback: String) {
            self.type = type
            self.message = message
            self.traceback = traceback
        }
    }

    public var kind: Kind
    /// The task's uuid; empty when the message was too malformed to read one.
    public var uuid: String
    /// The task name; empty when the message was too malformed to read one.
    public var taskName: String
    /// The queue the delivery came from.
    public var queue: String
    /// 1 for the first run, 2 for the first retry, and so on.
    public var attempt: Int
    /// The worker's id (``TaskEventRecording/workerID``).
    public var workerID: String
    /// When it happened.
    public var timestamp: Date
    /// When the task was created (the message's `created_at`), if known.
    public var createdAt: Date?
    /// The task's priority as its message gave it (QTasks: lower runs first).
    public var priority: Int?
    /// For the end of an attempt: from the start of the delivery's
    /// processing to the end of settling.
    public var duration: Duration?
    /// The W3C trace id of the delivery's span, when it is traced.
    public var traceID: String?
    /// For `received`: the arguments, bounded (``RecordedArguments``).
    public var arguments: RecordedArguments?
    /// For `succeeded`: the returned value.
    public var result: JSONValue?
    /// For `failed`, `retried` and `dead_lettered`: the error.
    public var failure: Failure?
    /// For `retried`: the delay before the next attempt, as the broker
    /// applied it.
    public var retryDelay: Duration?
    /// For `dead_lettered`: the dead-letter queue the message went to (for
    /// a body too large to read, the broker's dead-lettering of the queue).
    public var deadLetterQueue: String?

    public init(
        kind: Kind, uuid: String, taskName: String, queue: String, attempt: Int, workerID: String,
        timestamp: Date = Date(), createdAt: Date? = nil, priority: Int? = nil, duration: Duration? = nil,
        traceID: String? = nil, arguments: RecordedArguments? = nil, result: JSONValue? = nil,
        failure: Failure? = nil, retryDelay: Duration? = nil, deadLetterQueue: String? = nil
    ) {
        self.kind = kind
        self.uuid = uuid
        self.taskName = taskName
        self.queue = queue
        self.attempt = attempt
        self.workerID = workerID
        self.timestamp = timestamp
        self.createdAt = createdAt
        self.priority = priority
        self.duration = duration
        self.traceID = traceID
        self.arguments = arguments
        self.result = result
        self.failure = failure
        self.retryDelay = retryDelay
        self.deadLetterQueue = deadLetterQueue
    }

    /// The events exchange's routing key: `task.<kind>.<task name>` (dots in
    /// the task name kept, so `task.failed.#` matches every failure and
    /// `task.*.billing.#` every event of the `billing.…` tasks).
    public var routingKey: String {
        "task.\(kind.rawValue).\(taskName.isEmpty ? "unknown" : taskName)"
    }

    enum CodingKeys: String, CodingKey {
        case kind, uuid, queue, attempt, timestamp, priority, duration, arguments, result, failure
        case taskName = "task_name"
        case workerID = "worker_id"
        case createdAt = "created_at"
        case traceID = "trace_id"
        case retryDelay = "retry_delay"
        case deadLetterQueue = "dead_letter_queue"
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        kind = try c.decode(Kind.self, forKey: .kind)
        uuid = try c.decode(String.self, forKey: .uuid)
        taskName = try c.decode(String.self, forKey: .taskName)
        queue = try c.decode(String.self, forKey: .queue)
        attempt = try c.decode(Int.self, forKey: .attempt)
        workerID = try c.decode(String.self, forKey: .workerID)
        timestamp = Date(timeIntervalSince1970: try c.decode(Double.self, forKey: .timestamp))
        createdAt = try c.decodeIfPresent(Double.self, forKey: .createdAt).map(Date.init(timeIntervalSince1970:))
        priority = try c.decodeIfPresent(Int.self, forKey: .priority)
        duration = try c.decodeIfPresent(Double.self, forKey: .duration).map { Duration.seconds($0) }
        traceID = try c.decodeIfPresent(String.self, forKey: .traceID)
        arguments = try c.decodeIfPresent(RecordedArguments.self, forKey: .arguments)
        result = try c.decodeIfPresent(JSONValue.self, forKey: .result)
        failure = try c.decodeIfPresent(Failure.self, forKey: .failure)
        retryDelay = try c.decodeIfPresent(Double.self, forKey: .retryDelay).map { Duration.seconds($0) }
        deadLetterQueue = try c.decodeIfPresent(String.self, forKey: .deadLetterQueue)
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(kind, forKey: .kind)
        try c.encode(uuid, forKey: .uuid)
        try c.encode(taskName, forKey: .taskName)
        try c.encode(queue, forKey: .queue)
        try c.encode(attempt, forKey: .attempt)
        try c.encode(workerID, forKey: .workerID)
        try c.encode(timestamp.timeIntervalSince1970, forKey: .timestamp)
        try c.encodeIfPresent(createdAt?.timeIntervalSince1970, forKey: .createdAt)
        try c.encodeIfPresent(priority, forKey: .priority)
        try c.encodeIfPresent(duration.map(Seconds.double), forKey: .duration)
        try c.encodeIfPresent(traceID, forKey: .traceID)
        try c.encodeIfPresent(arguments, forKey: .arguments)
        try c.encodeIfPresent(result, forKey: .result)
        try c.encodeIfPresent(failure, forKey: .failure)
        try c.encodeIfPresent(retryDelay.map(Seconds.double), forKey: .retryDelay)
        try c.encodeIfPresent(deadLetterQueue, forKey: .deadLetterQueue)
    }
}
