import Foundation

/// Celery's task message protocol 2 (docs.celeryq.dev, "Message
/// Protocol"), as far as a worker acts on it: reading a task message into
/// the QTasks form the ``TaskRunner`` runs, and the producer's instructions
/// that come with it.
///
/// A Celery client (`send_task`, `apply_async`, `delay`) publishes:
/// - headers `task` (the task name) and `id` (the task id); `eta`
///   (`countdown` too) and `expires` (ISO 8601), `retries`, `timelimit`
///   (`[hard, soft]` seconds), `root_id`, `parent_id`, `group`,
///   `group_index`, `shadow`, `argsrepr`, `kwargsrepr`, `origin`, `lang`,
///   `stamps`, `stamped_headers`, `replaced_task_nesting`;
///   `ignore_result: true` means no result is published;
/// - properties `correlation_id` (the task id), `reply_to` (the `rpc://`
///   backend's reply queue), `content_type` `application/json`,
///   `content_encoding` `utf-8`, `priority`, `expiration` (with `expires`);
/// - body `[args, kwargs, embed]` (JSON), `embed` holding `callbacks`,
///   `errbacks`, `chain`, `chord` (``CeleryCanvas``).
///
/// docs/interop.md has the table of what is honoured, ignored as harmless,
/// or refused (error result and dead letter): serializers other than JSON,
/// compression, protocol 1, a soft time limit, chords.
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

    /// Reads a Celery protocol 2 message: the QTasks body to decode, and
    /// the instructions that come with it (``InboundTask``).
    ///
    /// - Throws: ``TaskInputError`` when the message is not a JSON Celery
    ///   protocol 2 message, or asks for something this worker refuses
    ///   (a chord, a soft time limit, a malformed `eta`...), naming it.
    static func read(body: [UInt8], properties: MessageProperties) throws(TaskInputError) -> InboundTask {
        var embed: JSONValue?
        let qtasksBody = try qtasksBody(from: body, properties: properties, embed: &embed)
        let headers = properties.headers
        let uuid = taskID(properties)
        let taskName = headers[taskHeader].flatMap { if case .string(let name) = $0 { name } else { nil } }
        func failure(_ message: String) -> TaskInputError {
            TaskInputError(.invalidField, message, uuid: uuid, taskName: taskName)
        }
        var task = InboundTask(format: .celery, body: qtasksBody)
        task.notBefore = try time(headers["eta"], named: "eta", failure)
        task.expiresAt = try time(headers["expires"], named: "expires", failure)
        switch headers["retries"] {
        case nil, .void?: break
        case .int(let count)? where count >= 0: task.retries = Int(clamping: count)
        case let other?: throw failure("Celery header retries must be a non-negative integer, found \(other)")
        }
        switch headers["timelimit"] {
        case nil, .void?: break
        case .array(let limits)? where limits.count == 2:
            if let soft = seconds(limits[1]) {
                throw failure(
                    "Celery header timelimit has a soft time limit (\(soft) s), which this worker cannot honour (a Swift task cannot be interrupted with an exception); send time_limit only")
            } else if limits[1] != .void {
                throw failure("Celery header timelimit must be [hard, soft] in seconds or null, found \(limits[1]) for soft")
            }
            if let hard = seconds(limits[0]) {
                guard hard > 0 else { throw failure("Celery header timelimit has a hard limit of \(hard) s; it must be positive") }
                task.timeLimit = Seconds.duration(hard)
            } else if limits[0] != .void {
                throw failure("Celery header timelimit must be [hard, soft] in seconds or null, found \(limits[0]) for hard")
            }
        case let other?: throw failure("Celery header timelimit must be [hard, soft], found \(other)")
        }
        do {
            task.canvas = try CeleryCanvas(embed: embed, headers: headers)
        } catch {
            throw error.reading(uuid: uuid, taskName: taskName)
        }
        return task
    }

    /// An `eta` / `expires` header: nil when absent or null.
    private static func time(
        _ value: HeaderValue?, named name: String, _ failure: (String) -> TaskInputError
    ) throws(TaskInputError) -> Double? {
        switch value {
        case nil, .void?: return nil
        case .string(let text)?:
            guard let seconds = ISOTime.seconds(from: text) else {
                throw failure("Celery header \(name) must be an ISO 8601 time, found '\(LogText.sanitized(String(text.prefix(64))))'")
            }
            return seconds
        case let other?:
            throw failure("Celery header \(name) must be an ISO 8601 time, found \(other)")
        }
    }

    private static func seconds(_ value: HeaderValue) -> Double? {
        switch value {
        case .int(let number): return Double(number)
        case .double(let number) where number.isFinite: return number
        default: return nil
        }
    }

    /// Rewrites a Celery protocol 2 message as the QTasks body
    /// `{"uuid", "task_name", "args", "kwargs"}` that ``TaskEnvelope``
    /// decodes, so that both formats run through the same typed argument
    /// decoding.
    ///
    /// - Throws: ``TaskInputError`` when the message is not a JSON Celery
    ///   protocol 2 message.
    static func qtasksBody(from body: [UInt8], properties: MessageProperties) throws(TaskInputError) -> [UInt8] {
        var embed: JSONValue?
        return try qtasksBody(from: body, properties: properties, embed: &embed)
    }

    private static func qtasksBody(
        from body: [UInt8], properties: MessageProperties, embed: inout JSONValue?
    ) throws(TaskInputError) -> [UInt8] {
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
        if parts.count > 2 { embed = parts[2] }
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
