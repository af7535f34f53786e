import Foundation

/// The task message formats a worker reads, told apart per message
/// (docs/wire-format.md, "Telling the formats apart"; docs/interop.md).
///
/// The rule, first match wins:
/// 1. a string header `task` (not empty): ``celery``;
/// 2. a body that is a JSON object with the key `actor_name`: ``dramatiq``;
/// 3. a body that is a JSON object with the keys `task_id` and `labels`:
///    ``taskiq``;
/// 4. anything else: ``qtasks``, whose reading names what is missing
///    (`task_name`, and the keys of the other formats) when the body fits
///    none of them.
public enum WireFormat: Sendable, Hashable, CustomStringConvertible {
    /// The QTasks body (`{"uuid", "task_name", "args", "kwargs", ...}`):
    /// this package's client, the CLI, Python QTasks, pika, `amqp-publish`.
    /// Results go back as ``TaskResult`` bodies.
    case qtasks
    /// Celery's message protocol 2: the task name and id in the headers
    /// `task` and `id`, the body `[args, kwargs, embed]`. Results go back
    /// as Celery's `rpc://` result backend expects them (``CeleryResult``).
    case celery
    /// Dramatiq's message (`dramatiq.Message.asdict()` as JSON):
    /// `{"queue_name", "actor_name", "args", "kwargs", "options",
    /// "message_id", "message_timestamp"}`.
    case dramatiq
    /// Taskiq's message (`taskiq.TaskiqMessage` as JSON):
    /// `{"task_id", "task_name", "labels", "labels_types", "args",
    /// "kwargs"}`.
    case taskiq

    /// The format as far as the properties tell: ``celery`` when there is
    /// a string header `task`, else ``qtasks`` (the body formats need
    /// ``init(detecting:body:)``). Results to `reply_to` are Celery's for
    /// ``celery`` and QTasks' for every other format.
    public init(detecting properties: MessageProperties) {
        if Self.hasCeleryTaskHeader(properties) {
            self = .celery
        } else {
            self = .qtasks
        }
    }

    /// The format of a message, by the rule above. Costs a scan of the body
    /// for the byte strings `"actor_name"` and `"labels"`, and a parse only
    /// when one of them is there (a QTasks body seldom has them).
    public init(detecting properties: MessageProperties, body: [UInt8]) {
        if Self.hasCeleryTaskHeader(properties) {
            self = .celery
            return
        }
        guard Self.mayBeForeign(body),
              case .object(let fields)? = try? JSONDecoder().decode(JSONValue.self, from: Data(body))
        else {
            self = .qtasks
            return
        }
        if fields["actor_name"] != nil {
            self = .dramatiq
        } else if fields["task_id"] != nil, fields["labels"] != nil {
            self = .taskiq
        } else {
            self = .qtasks
        }
    }

    public var description: String {
        switch self {
        case .qtasks: return "qtasks"
        case .celery: return "celery"
        case .dramatiq: return "dramatiq"
        case .taskiq: return "taskiq"
        }
    }

    private static let actorNameKey = Array(#""actor_name""#.utf8)
    private static let labelsKey = Array(#""labels""#.utf8)

    private static func hasCeleryTaskHeader(_ properties: MessageProperties) -> Bool {
        if case .string(let name)? = properties.headers[CeleryProtocol.taskHeader], !name.isEmpty { return true }
        return false
    }

    /// Whether `body` holds the bytes of `"actor_name"` or `"labels"`: one
    /// pass, a plain loop to each quote that a key's first letter follows.
    /// This runs twice on every delivery; a `memchr` to each quote (every
    /// key and string of a body starts with one), then `memcmp`, once per
    /// key, cost 2 % of a no-op task's CPU.
    static func mayBeForeign(_ body: [UInt8]) -> Bool {
        body.withUnsafeBufferPointer { bytes in
            actorNameKey.withUnsafeBufferPointer { actorName in
                labelsKey.withUnsafeBufferPointer { labels in
                    guard let start = bytes.baseAddress, bytes.count >= labels.count else { return false }
                    let quote = UInt8(ascii: "\""), a = UInt8(ascii: "a"), l = UInt8(ascii: "l")
                    var index = 0
                    let last = bytes.count - labels.count
                    while index <= last {
                        if bytes[index] == quote {
                            let next = bytes[index + 1]
                            if next == a, index + actorName.count <= bytes.count,
                                memcmp(start + index, actorName.baseAddress!, actorName.count) == 0
                            {
                                return true
                            }
                            if next == l, memcmp(start + index, labels.baseAddress!, labels.count) == 0 { return true }
                        }
                        index += 1
                    }
                    return false
                }
            }
        }
    }
}

/// A task message's name and uuid as its format carries them (the
/// ``WireFormat`` rule), read without decoding its arguments: for tools
/// that list messages (`qtasks dlq list`), whatever producer sent them.
///
/// | format | task name | uuid |
/// |---|---|---|
/// | ``WireFormat/qtasks`` | body `task_name` | body `uuid`, else `message_id` |
/// | ``WireFormat/celery`` | header `task` | header `id`, else `correlation_id`, else `message_id` |
/// | ``WireFormat/dramatiq`` | body `actor_name` | body `message_id` |
/// | ``WireFormat/taskiq`` | body `task_name` | body `task_id` |
///
/// What a message lacks is nil (a body that is no JSON object, a missing
/// or non-string field); the QTasks and Celery uuids fall back to the
/// AMQP ids as the worker's do.
public struct TaskIdentity: Sendable, Hashable {
    public var format: WireFormat
    public var taskName: String?
    public var uuid: String?

    public init(format: WireFormat, taskName: String?, uuid: String?) {
        self.format = format
        self.taskName = taskName
        self.uuid = uuid
    }

    /// Reads `message`'s format, task name and uuid.
    public init(of message: Message) {
        let properties = message.properties
        let format = WireFormat(detecting: properties, body: message.body)
        if format == .celery {
            let name: String? = if case .string(let task)? = properties.headers[CeleryProtocol.taskHeader] { task } else { nil }
            self.init(format: format, taskName: name, uuid: CeleryProtocol.taskID(properties))
            return
        }
        let fields: [String: JSONValue]
        if case .object(let object)? = try? JSONDecoder().decode(JSONValue.self, from: Data(message.body)) {
            fields = object
        } else {
            fields = [:]
        }
        func string(_ key: String) -> String? {
            if case .string(let text)? = fields[key], !text.isEmpty { return text }
            return nil
        }
        switch format {
        case .dramatiq: self.init(format: format, taskName: string("actor_name"), uuid: string("message_id"))
        case .taskiq: self.init(format: format, taskName: string("task_name"), uuid: string("task_id"))
        case .qtasks, .celery:
            self.init(format: format, taskName: string("task_name"), uuid: string("uuid") ?? properties.messageID)
        }
    }
}
