/// A task message the worker cannot run: it is dead-lettered, never retried.
///
/// `message` is one line saying what is wrong, fit for a result's
/// `traceback` and a log line; it never quotes argument values at length.
/// `uuid` and `taskName` carry what could be read before the problem.
public struct TaskInputError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The kind of bad input; new codes may be added.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Base: String {
            case oversizeMessage, malformedJSON, notAnObject, invalidField, unknownTask, invalidArguments
        }
        private let base: Base
        private init(_ base: Base) { self.base = base }
        /// The body is larger than the worker's `maxMessageBytes`.
        public static let oversizeMessage = Code(.oversizeMessage)
        /// The body is not valid UTF-8 JSON (or nests deeper than 512 levels).
        public static let malformedJSON = Code(.malformedJSON)
        /// The body is JSON but not an object.
        public static let notAnObject = Code(.notAnObject)
        /// A field of the task message is missing or of the wrong type
        /// (`task_name`, `uuid`, `priority`, `created_at`, `args`, `kwargs`).
        public static let invalidField = Code(.invalidField)
        /// No task of that name is registered.
        public static let unknownTask = Code(.unknownTask)
        /// The arguments do not fit the task's parameters (count, names, types).
        public static let invalidArguments = Code(.invalidArguments)
        public var description: String { base.rawValue }
    }

    public var code: Code
    /// One line saying what is wrong with the message.
    public var message: String
    /// The task uuid, when it could be read.
    public var uuid: String?
    /// The task name, when it could be read.
    public var taskName: String?

    /// - Parameters:
    ///   - uuid: the task uuid, if it could be read.
    ///   - taskName: the task name, if it could be read.
    public init(_ code: Code, _ message: String, uuid: String? = nil, taskName: String? = nil) {
        self.code = code
        self.message = message
        self.uuid = uuid
        self.taskName = taskName
    }

    public var description: String { message }

    /// A copy that also carries what was read of the message.
    func reading(uuid: String?, taskName: String?) -> TaskInputError {
        var copy = self
        copy.uuid = uuid
        copy.taskName = taskName
        return copy
    }
}
