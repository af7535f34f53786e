import Foundation

/// A task message as producers publish it: the body of an AMQP message.
///
/// Wire form (UTF-8 JSON object): `{"uuid", "task_name", "priority",
/// "args", "kwargs", "created_at"}`, the fields Python QTasks sends. Only
/// `task_name` is required when reading; `uuid` falls back to the AMQP
/// `message_id`, then to a new UUID; `args` defaults to `[]`, `kwargs` to
/// `{}`, `priority` to 0, `created_at` to the time of reading. A JSON `null`
/// counts as absent.
public struct TaskMessage: Hashable, Sendable {
    /// Identifies the task run; results carry it back.
    public var uuid: String
    /// The registered task to run (`task_name`).
    public var taskName: String
    /// QTasks priority, carried in the body as given (lower runs first in
    /// QTasks). Not mapped to the AMQP priority property.
    public var priority: Int
    /// Positional arguments.
    public var args: [JSONValue]
    /// Keyword arguments, by parameter name.
    public var kwargs: [String: JSONValue]
    /// When the task was created, Unix seconds.
    public var createdAt: Double
    /// For a step of a workflow: the workflow, what follows this step and
    /// the group it reports to (`workflow`, docs/workflows.md); nil for a
    /// plain task.
    public var workflow: WorkflowContext? = nil

    /// - Parameters:
    ///   - uuid: defaults to a new lowercased UUID string.
    ///   - createdAt: Unix seconds; defaults to now.
    public init(
        taskName: String,
        args: [JSONValue] = [],
        kwargs: [String: JSONValue] = [:],
        priority: Int = 0,
        uuid: String = TaskUUID.make(),
        createdAt: Double = Date().timeIntervalSince1970
    ) {
        self.uuid = uuid
        self.taskName = taskName
        self.priority = priority
        self.args = args
        self.kwargs = kwargs
        self.createdAt = createdAt
    }

    /// The message body: compact UTF-8 JSON with every field present, no
    /// escaped slashes, non-ASCII text unescaped.
    public func jsonBytes() -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(128 + taskName.utf8.count)
        bytes.append(contentsOf: #"{"uuid":"#.utf8)
        JSONValue.writeString(uuid, to: &bytes)
        bytes.append(contentsOf: #","task_name":"#.utf8)
        JSONValue.writeString(taskName, to: &bytes)
        bytes.append(contentsOf: #","priority":"#.utf8)
        bytes.append(contentsOf: String(priority).utf8)
        bytes.append(contentsOf: #","args":"#.utf8)
        JSONValue.array(args).write(to: &bytes)
        bytes.append(contentsOf: #","kwargs":"#.utf8)
        JSONValue.object(kwargs).write(to: &bytes)
        bytes.append(contentsOf: #","created_at":"#.utf8)
        JSONValue.writeNumber(createdAt, to: &bytes)
        if let workflow {
            bytes.append(contentsOf: #","workflow":"#.utf8)
            // Steps hold only JSON values, strings and integers: encoding
            // cannot fail.
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.withoutEscapingSlashes]
            let encoded: Data? = try? encoder.encode(workflow)
            bytes.append(contentsOf: encoded.map { [UInt8]($0) } ?? Array("null".utf8))
        }
        bytes.append(UInt8(ascii: "}"))
        return bytes
    }

    /// Reads a task message the way a worker does, with the same checks and
    /// fallbacks (`uuid` from `messageID` when absent from the body).
    ///
    /// - Parameters:
    ///   - body: the message body, UTF-8 JSON.
    ///   - messageID: the AMQP `message_id`, the first fallback for `uuid`.
    /// - Throws: ``TaskInputError`` (`.malformedJSON`, `.notAnObject`,
    ///   `.invalidField`) saying what is wrong.
    public init(jsonBytes body: [UInt8], messageID: String? = nil) throws {
        let envelope = try TaskEnvelope.decode(body, catalog: nil, messageID: messageID)
        let raw = envelope.call.arguments ?? TaskArguments(args: [], kwargs: [:])
        self.init(
            taskName: envelope.taskName,
            args: raw.args,
            kwargs: raw.kwargs,
            priority: envelope.priority,
            uuid: envelope.uuid,
            createdAt: envelope.createdAt
        )
        self.workflow = envelope.workflow
    }
}
