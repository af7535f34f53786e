/// A task that cannot be registered.
public struct TaskRegistrationError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The kind of failure; new codes may be added.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Base: String { case duplicateTask, invalidParameters }
        private let base: Base
        private init(_ base: Base) { self.base = base }
        /// A task of that name is already registered.
        public static let duplicateTask = Code(.duplicateTask)
        /// The parameter names do not match the handler (count, duplicates, empty names).
        public static let invalidParameters = Code(.invalidParameters)
        public var description: String { base.rawValue }
    }

    public var code: Code
    /// One line saying what is wrong.
    public var message: String
    /// The task being registered.
    public var taskName: String

    /// - Parameter taskName: the task being registered.
    public init(_ code: Code, _ message: String, taskName: String) {
        self.code = code
        self.message = message
        self.taskName = taskName
    }

    public var description: String { message }
}
