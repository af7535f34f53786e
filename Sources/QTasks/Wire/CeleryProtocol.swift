import Foundation

/// Celery's task message protocol 2, as far as a worker needs it: reading a
/// task message into the QTasks form the ``TaskRunner`` runs.
///
/// A Celery client (`send_task`, `apply_async`, `delay`) publishes:
/// - headers `task` (the task name) and `id` (the task id), plus
///   bookkeeping this worker ignores (`lang`, `eta`, `expires`, `retries`,
///   `timelimit`, `root_id`, `parent_id`, `group`, `argsrepr`, `origin`...);
///   `ignore_result: true` means no result is published;
/// - properties `correlation_id` (the task id), `reply_to` (the `rpc://`
///   backend's reply queue, empty without a backend), `content_type`
///   `application/json`, `content_encoding` `utf-8`, `priority`;
/// - body `[args, kwargs, embed]` (JSON), `embed` holding `callbacks`,
///   `errbacks`, `chain`, `chord`.
///
/// Not supported (the message is rejected as bad input, or the field
/// ignored, see docs/interop.md): serializers other than JSON, compression,
/// protocol 1 (the body an object), `eta`/`countdown` (run at once),
/// `expires`, canvas callbacks and chains in `embed`.
public enum CeleryProtocol {
    /// The header holding the task name.
    public static let taskHeader = "task"
    /// The header holding the task id.
    public static let idHeader = "id"
    /// The header that, when `true`, asks for no result.
    public static let ignoreResultHeader = "ignore_result"

    /// True when the producer asked for no result (`ignore_result=True`).
    static func ignoresResult(_ properties: MessageProperties) -> Bool {
        properties.headers[ignoreResultHeader] == .bool(true)
    }

    /// The task id: header `id`, else `correlation_id`, else `message_id`.
    static func taskID(_ properties: MessageProperties) -> String? {
        if case .string(let id)? = properties.headers[idHeader], !id.isEmpty { return id }
        return properties.correlationID ?? properties.messageID
    }

    /// Rewrites a Celery protocol 2 message as the QTasks body
    /// `{"uuid", "task_name", "args", "kwargs"}` that ``TaskEnvelope``
    /// decodes, so that both formats run through the same typed argument
    /// decoding.
    ///
    /// - Throws: ``TaskInputError`` when the message is not a JSON Celery
    ///   protocol 2 message.
    static func qtasksBody(from body: [UInt8], properties: MessageProperties) throws(TaskInputError) -> [UInt8] {
        guard case .string(let taskName)? = properties.headers[taskHeader] else {
            throw TaskInputError(.invalidField, "Celery message has no task header")
        }
        let uuid = taskID(properties) ?? TaskUUID.make()
        func failure(_ code: TaskInputError.Code, _ message: String) -> TaskInputError {
            TaskInputError(code, message, uuid: uuid, taskName: taskName)
        }
        if let type = properties.contentType, type.lowercased() != "application/json" {
            throw failure(
                .malformedJSON,
                "Celery message content type '\(type)' is not supported; send JSON (task_serializer = 'json')")
        }
        if let encoding = properties.contentEncoding, !["utf-8", "utf8"].contains(encoding.lowercased()) {
            throw failure(.malformedJSON, "Celery message content encoding '\(encoding)' is not supported; send utf-8")
        }
        if let compression = properties.headers["compression"], compression != .void {
            throw failure(.malformedJSON, "compressed Celery messages are not supported; send them uncompressed")
        }
        guard JSONDiagnostics.isValidUTF8(body) else {
            throw failure(.malformedJSON, "task message body is not valid UTF-8")
        }
        let parsed: JSONValue
        do {
            parsed = try JSONDecoder().decode(JSONValue.self, from: Data(body))
        } catch {
            throw failure(.malformedJSON, JSONDiagnostics.syntaxProblem(in: body))
        }
        guard case .array(let parts) = parsed, (1...3).contains(parts.count) else {
            if case .object = parsed {
                throw failure(
                    .notAnObject,
                    "Celery message body is an object (protocol 1?); only protocol 2 ([args, kwargs, embed]) is supported")
            }
            throw failure(.notAnObject, "Celery message body must be [args, kwargs, embed], found \(parsed.kindName)")
        }
        var args: [JSONValue] = []
        switch parts[0] {
        case .array(let values): args = values
        case .null: break
        default: throw failure(.invalidField, "Celery args must be a JSON array, found \(parts[0].kindName)")
        }
        var kwargs: [String: JSONValue] = [:]
        if parts.count > 1 {
            switch parts[1] {
            case .object(let values): kwargs = values
            case .null: break
            default: throw failure(.invalidField, "Celery kwargs must be a JSON object, found \(parts[1].kindName)")
            }
        }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(body.count + 64 + uuid.utf8.count + taskName.utf8.count)
        bytes.append(contentsOf: #"{"uuid":"#.utf8)
        JSONValue.writeString(uuid, to: &bytes)
        bytes.append(contentsOf: #","task_name":"#.utf8)
        JSONValue.writeString(taskName, to: &bytes)
        bytes.append(contentsOf: #","args":"#.utf8)
        JSONValue.array(args).write(to: &bytes)
        bytes.append(contentsOf: #","kwargs":"#.utf8)
        JSONValue.object(kwargs).write(to: &bytes)
        bytes.append(UInt8(ascii: "}"))
        return bytes
    }
}
