import Logging

/// What a running task knows about itself and the message that carried it.
///
/// A handler gets it by taking `TaskContext` as its first parameter, or
/// anywhere in the task's code through ``current``.
public struct TaskContext: Sendable {
    /// The header that carries the attempt number of a retried task.
    public static let attemptHeader = MessageHeaders.attempt

    /// The context of the task running in the current Swift task, if any.
    @TaskLocal public static var current: TaskContext?

    /// The task's uuid (from the body, else the AMQP `message_id`, else new).
    public let uuid: String
    /// The registered name the message asked for (`task_name`).
    public let taskName: String
    /// 1 for the first run; from the `x-qtasks-attempt` header when present.
    public let attempt: Int
    /// The queue the message was consumed from.
    public let queue: String
    /// True when the broker delivered this message before without an
    /// acknowledgement (a worker died or lost its connection mid-task).
    public let redelivered: Bool
    /// The QTasks priority from the body (0 when absent).
    public let priority: Int
    /// When the task was created (body `created_at`, else the time the
    /// worker read it), Unix seconds.
    public let createdAt: Double
    /// The arguments as received, as JSON values.
    public let arguments: TaskArguments
    /// The AMQP properties of the message.
    public let properties: MessageProperties
    private let baseLogger: Logger
    /// The scopes ``resolve(_:)`` uses; set by the ``TaskRunner``, nil for a
    /// context made by hand.
    var dependencies: CallDependencies?

    /// - Parameters:
    ///   - attempt: nil reads it from the `x-qtasks-attempt` header, else 1.
    ///   - logger: the worker's logger; ``logger`` adds the task's metadata.
    public init(
        uuid: String,
        taskName: String,
        attempt: Int? = nil,
        queue: String = "default",
        redelivered: Bool = false,
        priority: Int = 0,
        createdAt: Double = 0,
        arguments: TaskArguments = TaskArguments(args: [], kwargs: [:]),
        properties: MessageProperties = MessageProperties(),
        logger: Logger = Logger(label: "qtasks.task")
    ) {
        self.uuid = uuid
        self.taskName = taskName
        self.attempt = attempt ?? Self.attempt(from: properties.headers)
        self.queue = queue
        self.redelivered = redelivered
        self.priority = priority
        self.createdAt = createdAt
        self.arguments = arguments
        self.properties = properties
        self.baseLogger = logger
    }

    /// A logger with `uuid` and `task` metadata.
    ///
    /// Built on each access: most tasks never log, so the worker does not
    /// pay for the metadata up front.
    public var logger: Logger {
        Self.taskLogger(baseLogger, uuid: uuid, taskName: taskName)
    }

    /// `logger` with `uuid` and `task` metadata.
    static func taskLogger(_ logger: Logger, uuid: String, taskName: String) -> Logger {
        var logger = logger
        logger[metadataKey: "uuid"] = .string(uuid)
        logger[metadataKey: "task"] = .string(taskName)
        return logger
    }

    /// The AMQP `message_id`.
    public var messageID: String? { properties.messageID }
    /// The AMQP `correlation_id`.
    public var correlationID: String? { properties.correlationID }
    /// The queue the result goes to (AMQP `reply_to`), if any.
    public var replyTo: String? { properties.replyTo }
    /// The AMQP headers.
    public var headers: [String: HeaderValue] { properties.headers }

    /// Cancels the running task: throws ``TaskCancellation``, so the result
    /// has status `cancel` with `reason`, and the message is acknowledged
    /// (neither retried nor dead-lettered).
    public func cancel(reason: String) throws -> Never {
        throw TaskCancellation(reason: reason)
    }

    /// Asks for another attempt: throws ``TaskRetry``. It runs again after
    /// `delay` (nil: the retry policy's backoff) while the policy's
    /// `maxAttempts` allows; after the last attempt the task fails.
    public func retry(_ reason: String, after delay: Duration? = nil) throws -> Never {
        throw TaskRetry(reason, after: delay)
    }

    /// The attempt number in `headers`, 1 when absent or unreadable.
    static func attempt(from headers: [String: HeaderValue]) -> Int {
        guard let value = headers[attemptHeader] else { return 1 }
        switch value {
        case .int(let number): return number >= 1 ? Int(clamping: number) : 1
        case .string(let text): return Int(text).map { max($0, 1) } ?? 1
        case .double(let number): return number >= 1 && number < 1e15 ? Int(number) : 1
        default: return 1
        }
    }
}
