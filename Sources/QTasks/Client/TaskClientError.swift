/// An error from a ``TaskClient`` or ``TaskHandle``.
public struct TaskClientError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The kind of failure; new codes may be added.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Base: String { case timeout, closed, replyQueueLost, invalidQueue, noResultStore }
        private let base: Base
        private init(_ base: Base) { self.base = base }
        /// No result arrived within the timeout. The task may still run; a
        /// later ``TaskHandle/result(timeout:)`` can still get its result.
        public static let timeout = Code(.timeout)
        /// The client was closed.
        public static let closed = Code(.closed)
        /// The reply queue the task was sent through ended (its connection
        /// was lost): its result cannot arrive any more. The task itself was
        /// sent and may well run. Tasks sent later go through a new reply
        /// queue.
        public static let replyQueueLost = Code(.replyQueueLost)
        /// The task's queue has no name (an empty string): RabbitMQ would
        /// make a server-named queue of it and route nothing there.
        public static let invalidQueue = Code(.invalidQueue)
        /// A stored result was asked for, and the client was made without a
        /// result store.
        public static let noResultStore = Code(.noResultStore)
        public var description: String { base.rawValue }
    }

    public var code: Code
    /// One line saying what happened.
    public var message: String
    /// The task concerned, when there is one.
    public var uuid: String?

    /// - Parameter uuid: the task concerned, if any.
    public init(_ code: Code, _ message: String, uuid: String? = nil) {
        self.code = code
        self.message = message
        self.uuid = uuid
    }

    public var description: String { message }
}
