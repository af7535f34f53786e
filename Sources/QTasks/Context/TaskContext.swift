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
    public var uuid: String { storage.uuid }
    /// The registered name the message asked for (`task_name`).
    public var taskName: String { storage.taskName }
    /// 1 for the first run; from the `x-qtasks-attempt` header when present.
    public var attempt: Int { storage.attempt }
    /// The queue the message was consumed from.
    public var queue: String { storage.queue }
    /// True when the broker delivered this message before without an
    /// acknowledgement (a worker died or lost its connection mid-task).
    public var redelivered: Bool { storage.redelivered }
    /// The QTasks priority from the body (0 when absent).
    public var priority: Int { storage.priority }
    /// When the task was created (body `created_at`, else the time the
    /// worker read it), Unix seconds.
    public var createdAt: Double { storage.createdAt }
    /// The arguments as received, as JSON values.
    public var arguments: TaskArguments { storage.arguments }
    /// The AMQP properties of the message.
    public var properties: MessageProperties { storage.properties }
    private var baseLogger: Logger { storage.baseLogger }
    /// The scopes ``resolve(_:)`` uses; set by the ``TaskRunner``, nil for a
    /// context made by hand.
    var dependencies: CallDependencies? {
        get { storage.dependencies }
        set {
            let old = storage
            storage = Storage(
                uuid: old.uuid, taskName: old.taskName, attempt: old.attempt, queue: old.queue, redelivered: old.redelivered,
                priority: old.priority, createdAt: old.createdAt, arguments: old.arguments, properties: old.properties,
                baseLogger: old.baseLogger, dependencies: newValue)
        }
    }

    /// The fields, in one shared object: a context is copied several times
    /// per task (into the task-local, the middleware, the handler's
    /// closure), and as a struct of a dozen strings, collections and
    /// existentials every copy retained each of them (2 % of a no-op
    /// task's CPU); now it retains one.
    private var storage: Storage

    private final class Storage: Sendable {
        let uuid: String
        let taskName: String
        let attempt: Int
        let queue: String
        let redelivered: Bool
        let priority: Int
        let createdAt: Double
        let arguments: TaskArguments
        let properties: MessageProperties
        let baseLogger: Logger
        let dependencies: CallDependencies?

        init(
            uuid: String, taskName: String, attempt: Int, queue: String, redelivered: Bool, priority: Int, createdAt: Double,
            arguments: TaskArguments, properties: MessageProperties, baseLogger: Logger, dependencies: CallDependencies?
        ) {
            self.uuid = uuid
            self.taskName = taskName
            self.attempt = attempt
            self.queue = queue
            self.redelivered = redelivered
            self.priority = priority
            self.createdAt = createdAt
            self.arguments = arguments
            self.properties = properties
            self.baseLogger = baseLogger
            self.dependencies = dependencies
        }
    }

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
        self.init(
            uuid: uuid, taskName: taskName, attempt: attempt, queue: queue, redelivered: redelivered, priority: priority,
            createdAt: createdAt, arguments: arguments, properties: properties, logger: logger, dependencies: nil)
    }

    /// The context of a task call the ``TaskRunner`` runs, with its
    /// dependency scopes.
    init(
        uuid: String,
        taskName: String,
        attempt: Int?,
        queue: String,
        redelivered: Bool,
        priority: Int,
        createdAt: Double,
        arguments: TaskArguments,
        properties: MessageProperties,
        logger: Logger,
        dependencies: CallDependencies?
    ) {
        storage = Storage(
            uuid: uuid, taskName: taskName, attempt: attempt ?? Self.attempt(from: properties.headers), queue: queue,
            redelivered: redelivered, priority: priority, createdAt: createdAt, arguments: arguments, properties: properties,
            baseLogger: logger, dependencies: dependencies)
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
