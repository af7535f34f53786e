/// How a task run ended, as written in a result's `status` field.
public struct TaskStatus: RawRepresentable, Codable, Hashable, Sendable, CustomStringConvertible {
    /// The wire spelling.
    public let rawValue: String

    /// A status by its wire spelling (statuses from other producers included).
    public init(rawValue: String) { self.rawValue = rawValue }

    /// Sent and not started yet (result stores; Python QTasks' `new`).
    public static let new = TaskStatus(rawValue: "new")
    /// Running (result stores; Python QTasks' `process`).
    public static let process = TaskStatus(rawValue: "process")
    /// An attempt failed and the task waits for its next one (result
    /// stores only; QTasks readers treat it as not finished).
    public static let retry = TaskStatus(rawValue: "retry")
    /// The handler returned; `returning` holds its value.
    public static let success = TaskStatus(rawValue: "success")
    /// The handler threw, or the message was bad input; `traceback` says why.
    public static let error = TaskStatus(rawValue: "error")
    /// The run was cancelled before it finished.
    public static let cancel = TaskStatus(rawValue: "cancel")

    public var description: String { rawValue }

    /// Whether no further attempt follows: `success`, `error`, `cancel`
    /// (Python QTasks' `result_statuses_end`).
    public var isFinal: Bool { self == .success || self == .error || self == .cancel }
}
