import Foundation

/// The outcome of one task run, as published to the task's `reply_to` queue.
///
/// Wire form (UTF-8 JSON object):
/// `{"uuid", "task_name", "status", "returning", "traceback", "created_at",
/// "updated_at", "retry"}`. Times are Unix seconds as `Double`.
public struct TaskResult: Codable, Hashable, Sendable {
    /// The task's uuid (lowercased UUID text for tasks sent by ``TaskClient``).
    public var uuid: String
    /// The task name; empty when the message was too malformed to read it.
    public var taskName: String
    /// `success`, `error` or `cancel`.
    public var status: TaskStatus
    /// What the handler returned, `nil` (JSON `null`) on error, cancel, or a
    /// handler returning `Void`.
    public var returning: JSONValue?
    /// On error, `"ErrorType: message"`; otherwise `nil`.
    public var traceback: String?
    /// When the task was created (the message's `created_at`), Unix seconds.
    public var createdAt: Double
    /// When this result was produced, Unix seconds.
    public var updatedAt: Double
    /// How many earlier runs of this task failed and were retried (0 on the
    /// first run).
    public var retry: Int

    /// A result from its fields; times in Unix seconds.
    public init(
        uuid: String,
        taskName: String,
        status: TaskStatus,
        returning: JSONValue? = nil,
        traceback: String? = nil,
        createdAt: Double,
        updatedAt: Double,
        retry: Int = 0
    ) {
        self.uuid = uuid
        self.taskName = taskName
        self.status = status
        self.returning = returning
        self.traceback = traceback
        self.createdAt = createdAt
        self.updatedAt = updatedAt
        self.retry = retry
    }

    enum CodingKeys: String, CodingKey {
        case uuid
        case taskName = "task_name"
        case status
        case returning
        case traceback
        case createdAt = "created_at"
        case updatedAt = "updated_at"
        case retry
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        uuid = try container.decode(String.self, forKey: .uuid)
        taskName = try container.decodeIfPresent(String.self, forKey: .taskName) ?? ""
        status = try container.decode(TaskStatus.self, forKey: .status)
        // A JSON null here means "no value"; .null would be a second spelling of it.
        let returning = try container.decodeIfPresent(JSONValue.self, forKey: .returning)
        self.returning = returning?.isNull == true ? nil : returning
        traceback = try container.decodeIfPresent(String.self, forKey: .traceback)
        createdAt = try container.decodeIfPresent(Double.self, forKey: .createdAt) ?? 0
        updatedAt = try container.decodeIfPresent(Double.self, forKey: .updatedAt) ?? 0
        retry = try container.decodeIfPresent(Int.self, forKey: .retry) ?? 0
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(uuid, forKey: .uuid)
        try container.encode(taskName, forKey: .taskName)
        try container.encode(status, forKey: .status)
        // Always present, null included: foreign consumers read the key.
        try container.encode(returning ?? .null, forKey: .returning)
        try container.encode(traceback, forKey: .traceback)
        try container.encode(createdAt, forKey: .createdAt)
        try container.encode(updatedAt, forKey: .updatedAt)
        try container.encode(retry, forKey: .retry)
    }

    /// The result's wire body: compact UTF-8 JSON, every field present, no
    /// escaped slashes, non-ASCII text unescaped.
    public func jsonBytes() -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(160 + uuid.utf8.count + taskName.utf8.count)
        bytes.append(contentsOf: #"{"uuid":"#.utf8)
        JSONValue.writeString(uuid, to: &bytes)
        bytes.append(contentsOf: #","task_name":"#.utf8)
        JSONValue.writeString(taskName, to: &bytes)
        bytes.append(contentsOf: #","status":"#.utf8)
        JSONValue.writeString(status.rawValue, to: &bytes)
        bytes.append(contentsOf: #","returning":"#.utf8)
        (returning ?? .null).write(to: &bytes)
        bytes.append(contentsOf: #","traceback":"#.utf8)
        if let traceback { JSONValue.writeString(traceback, to: &bytes) } else { bytes.append(contentsOf: "null".utf8) }
        bytes.append(contentsOf: #","created_at":"#.utf8)
        JSONValue.writeNumber(createdAt, to: &bytes)
        bytes.append(contentsOf: #","updated_at":"#.utf8)
        JSONValue.writeNumber(updatedAt, to: &bytes)
        bytes.append(contentsOf: #","retry":"#.utf8)
        bytes.append(contentsOf: String(retry).utf8)
        bytes.append(UInt8(ascii: "}"))
        return bytes
    }

    /// Reads a result body.
    ///
    /// - Throws: `DecodingError` when `bytes` is not a result object.
    public init(jsonBytes bytes: [UInt8]) throws {
        self = try JSONDecoder().decode(TaskResult.self, from: Data(bytes))
    }
}
