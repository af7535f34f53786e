/// How a task run ended, as written in a result's `status` field.
public struct TaskStatus: RawRepresentable, Codable, Hashable, Sendable, CustomStringConvertible {
    /// The wire spelling.
    public let rawValue: String

    /// A status by its wire spelling (statuses from other producers included).
    public init(rawValue: String) { self.rawValue = rawValue }

    /// The handler returned; `returning` holds its value.
    public static let success = TaskStatus(rawValue: "success")
    /// The handler threw, or the message was bad input; `traceback` says why.
    public static let error = TaskStatus(rawValue: "error")
    /// The run was cancelled before it finished.
    public static let cancel = TaskStatus(rawValue: "cancel")

    public var description: String { rawValue }
}
