/// A queue name a broker cannot use as a task queue, found before anything
/// is declared: see ``QueueNaming/validateTaskQueue(_:)``.
public struct QueueNameError: Error, Sendable, Hashable, CustomStringConvertible {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Base: String { case empty, tooLong, reserved }
        private let base: Base
        private init(_ base: Base) { self.base = base }
        /// The empty name (RabbitMQ would make up a server-named
        /// `amq.gen-…` queue and a dead-letter queue `.dlq`).
        public static let empty = Code(.empty)
        /// Longer than ``QueueNaming/longestTaskQueueName`` bytes (or, for
        /// a queue that is only read, than AMQP's 255).
        public static let tooLong = Code(.tooLong)
        /// Starts with `amq.`, which RabbitMQ reserves for itself (a
        /// declaration is refused with 403).
        public static let reserved = Code(.reserved)
        public var description: String { base.rawValue }
    }

    public var code: Code
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { message }
}

extension QueueNaming {
    /// AMQP's longest name: a short string, 255 bytes.
    public static let longestAMQPName = 255

    /// The longest retry delay a broker names a queue after, in
    /// milliseconds: 30 days (`RetryDelays.maximumMilliseconds` in
    /// QTasksRabbitMQ, checked equal by its tests).
    public static let longestRetryDelayMilliseconds = 30 * 24 * 3600 * 1000

    /// The longest task queue name, in UTF-8 bytes: 238. A worker also
    /// declares `<queue>.dlq` and `<queue>.retry.<milliseconds>` (up to
    /// `.retry.2592000000`, 17 bytes, for the longest delay, 30 days), and
    /// every one of them must fit AMQP's 255 bytes.
    public static let longestTaskQueueName =
        longestAMQPName - ".retry.".utf8.count - String(longestRetryDelayMilliseconds).utf8.count

    /// Checks a task queue's name (one a worker consumes or a client sends
    /// to): not empty, at most ``longestTaskQueueName`` bytes of UTF-8,
    /// not starting with RabbitMQ's reserved `amq.`.
    ///
    /// - Parameter what: how the message names it (`queue name`, `--queue`).
    /// - Throws: ``QueueNameError`` saying which rule and, for a long
    ///   name, the limit and why.
    public static func validateTaskQueue(_ name: String, what: String = "queue name") throws {
        guard !name.isEmpty else {
            throw QueueNameError(.empty, "\(what) is empty: a task queue needs a name")
        }
        let bytes = name.utf8.count
        guard bytes <= longestTaskQueueName else {
            throw QueueNameError(
                .tooLong,
                "\(what) is \(bytes) bytes; at most \(longestTaskQueueName), so that its dead-letter queue (.dlq) and retry queues (.retry.<ms>, up to .retry.\(longestRetryDelayMilliseconds)) fit AMQP's \(longestAMQPName)"
            )
        }
        guard !name.hasPrefix("amq.") else {
            throw QueueNameError(.reserved, "\(what) '\(name)' starts with 'amq.', which RabbitMQ reserves for its own queues")
        }
    }

    /// Checks the name of a queue that is read, not declared (`qtasks purge`,
    /// `qtasks dlq`): 1 to 255 bytes.
    ///
    /// - Throws: ``QueueNameError``.
    public static func validateExistingQueue(_ name: String, what: String = "queue name") throws {
        guard !name.isEmpty else { throw QueueNameError(.empty, "\(what) is empty") }
        let bytes = name.utf8.count
        guard bytes <= longestAMQPName else {
            throw QueueNameError(.tooLong, "\(what) is \(bytes) bytes; AMQP allows at most \(longestAMQPName)")
        }
    }
}

extension QueueNaming {
    /// ``validateTaskQueue(_:what:)`` for a ``Broker``'s
    /// ``Broker/declareTaskQueue(_:)``, before any broker call: the
    /// refusal as a ``BrokerError`` with code `.refused` (what the
    /// protocol throws) and the rule in its message.
    public static func checkBeforeDeclaring(_ name: String) throws {
        do {
            try validateTaskQueue(name, what: "task queue name")
        } catch let error as QueueNameError {
            throw BrokerError(.refused, error.message)
        }
    }
}
