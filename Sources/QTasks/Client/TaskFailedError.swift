/// A task that did not succeed, as its result message told: thrown by
/// ``TaskHandle/value(timeout:)``.
///
/// The worker writes a failure as `traceback` `"<ErrorType>: <message>"`
/// (docs/wire-format.md); this error gives both parts, the whole
/// traceback, and the task's uuid and name. No stack crosses the wire: the
/// worker's logs and traces (by uuid) hold the rest.
public struct TaskFailedError: Error, Sendable, Hashable, CustomStringConvertible {
    /// How the task ended.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Base: String { case failed, cancelled, unexpectedResult }
        private let base: Base
        private init(_ base: Base) { self.base = base }
        /// The handler threw (or the input was bad): status `error`.
        public static let failed = Code(.failed)
        /// The task was cancelled: status `cancel`.
        public static let cancelled = Code(.cancelled)
        /// The task succeeded, but its `returning` does not decode as the
        /// handle's result type (a worker running another version of it).
        public static let unexpectedResult = Code(.unexpectedResult)
        public var description: String { base.rawValue }
    }

    public var code: Code
    /// The task's uuid.
    public var uuid: String
    /// The task's name.
    public var taskName: String
    /// The remote error's type (`"ValidationError"`, `"TaskInputError"`),
    /// `""` when the traceback names none.
    public var errorType: String
    /// The remote error's message.
    public var message: String
    /// The result's whole `traceback`, nil when it had none.
    public var traceback: String?
    /// The result message it was read from.
    public var result: TaskResult

    /// - Parameters:
    ///   - message: overrides the message read from the traceback.
    public init(_ code: Code, result: TaskResult, message: String? = nil) {
        self.code = code
        self.uuid = result.uuid
        self.taskName = result.taskName
        self.traceback = result.traceback
        self.result = result
        let traceback = result.traceback ?? ""
        // "<ErrorType>: <message>": a type is one word (Swift type names
        // may hold dots and generics, no spaces).
        if let colon = traceback.range(of: ": "), !traceback[..<colon.lowerBound].contains(" ") {
            self.errorType = String(traceback[..<colon.lowerBound])
            self.message = message ?? String(traceback[colon.upperBound...])
        } else {
            self.errorType = ""
            self.message = message ?? traceback
        }
    }

    public var description: String {
        let what = errorType.isEmpty ? message : "\(errorType): \(message)"
        switch code {
        case .cancelled: return "task '\(taskName)' (uuid \(uuid)) was cancelled: \(what)"
        case .unexpectedResult: return "task '\(taskName)' (uuid \(uuid)) succeeded, but \(message)"
        default: return "task '\(taskName)' (uuid \(uuid)) failed: \(what)"
        }
    }
}
