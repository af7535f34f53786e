import Foundation

/// A task message decoded for running: the header fields plus the
/// arguments already decoded into the handler's parameter types.
///
/// Two paths: the worker's own parser (``JSONParser``) and the values it
/// read, for the bodies it is sure to read as `JSONDecoder` does; and
/// `JSONDecoder` through `init(from:)` for the rest and for every error
/// (the handler is looked up by `task_name` inside `init(from:)`, the
/// catalog travelling in `userInfo`).
struct TaskEnvelope: Decodable {
    /// The body's `uuid`, nil when absent.
    var bodyUUID: String?
    var taskName: String
    var priority: Int
    /// The body's `created_at`, nil when absent.
    var bodyCreatedAt: Double?
    var call: PreparedCall
    /// Set when the task is a step of a workflow (docs/workflows.md).
    var workflow: WorkflowContext?

    /// The registered task's options (nil without a catalog, and for the
    /// worker's own workflow start).
    var options: TaskOptions?

    /// The uuid with its fallbacks filled in by ``decode(_:catalog:messageID:decoder:)``.
    var uuid: String = ""
    var createdAt: Double = 0

    static let catalogKey = CodingUserInfoKey(rawValue: "qtasks.catalog")!

    /// A decoder that looks tasks up in `catalog` (nil: decode arguments as
    /// raw JSON values, for ``TaskMessage``).
    static func makeDecoder(catalog: TaskCatalog?) -> JSONDecoder {
        let decoder = JSONDecoder()
        if let catalog { decoder.userInfo[catalogKey] = catalog }
        return decoder
    }

    /// Decodes a body, filling `uuid` from `messageID` or a new UUID and
    /// `createdAt` with now when the body has none.
    ///
    /// - Parameters:
    ///   - fastPath: false reads the body with `JSONDecoder` only (for
    ///     tests that compare the two paths).
    ///   - now: the time to take for a missing `created_at`, Unix seconds
    ///     (nil: read the clock).
    /// - Throws: ``TaskInputError`` saying what is wrong with the body.
    static func decode(
        _ body: [UInt8],
        catalog: TaskCatalog?,
        messageID: String?,
        decoder: JSONDecoder? = nil,
        fastPath: Bool = true,
        now: Double? = nil
    ) throws(TaskInputError) -> TaskEnvelope {
        var envelope: TaskEnvelope
        if fastPath, let fast = fastDecode(body, catalog: catalog) {
            envelope = fast
        } else {
            do {
                envelope = try (decoder ?? makeDecoder(catalog: catalog)).decode(TaskEnvelope.self, from: Data(body))
            } catch {
                throw explain(error, body: body)
            }
        }
        envelope.uuid = envelope.bodyUUID ?? messageID ?? TaskUUID.make()
        envelope.createdAt = envelope.bodyCreatedAt ?? now ?? Date().timeIntervalSince1970
        return envelope
    }

    /// The body read by ``JSONParser`` and taken from its values directly,
    /// with no `Decoder` and no Codable containers for the envelope or the
    /// arguments (a quarter of a no-op task's CPU went to `JSONDecoder`, and
    /// then half of what was left to those containers); or nil when that
    /// path cannot be sure to read it as `JSONDecoder` does: then
    /// `JSONDecoder` reads it, and its value or error is the one used.
    /// Bodies with invalid UTF-8 or a `\u` escape always go to
    /// `JSONDecoder` (the parser repairs what `JSONDecoder` refuses); so
    /// does every body that fails to decode, so that errors are worded as
    /// before.
    private static func fastDecode(_ body: [UInt8], catalog: TaskCatalog?) -> TaskEnvelope? {
        // The envelope's fields as the parser reads them, the last of a
        // repeated key winning (as in a parsed object); no dictionary of
        // the body is built. Strict: invalid UTF-8 and \u escapes fail
        // here, for JSONDecoder to read.
        var fields = Fields()
        let isObject = try? JSONParser.members(of: body, strict: true) { key, value in
            switch key {
            case "uuid": fields.uuid = value
            case "task_name": fields.taskName = value
            case "priority": fields.priority = value
            case "args": fields.args = value
            case "kwargs": fields.kwargs = value
            case "created_at": fields.createdAt = value
            case "workflow": fields.workflow = value
            default: break
            }
        }
        guard isObject == true else { return nil }
        return try? TaskEnvelope(fields: fields, catalog: catalog, bodySize: body.count)
    }

    /// The body's fields that the envelope reads (``EnvelopeKey``), nil when
    /// absent.
    private struct Fields {
        var uuid: JSONValue?
        var taskName: JSONValue?
        var priority: JSONValue?
        var args: JSONValue?
        var kwargs: JSONValue?
        var createdAt: JSONValue?
        var workflow: JSONValue?
    }

    /// ``init(from:)`` over a parsed body, agreeing with it on every body it
    /// accepts; anything else throws (`JSONValueDecoder.Unsupported` or an
    /// error of the arguments) for `JSONDecoder` to decide. The fields are
    /// read as ``JSONValueDecoder`` read them before.
    private init(fields: Fields, catalog: TaskCatalog?, bodySize: Int) throws {
        func string(_ value: JSONValue?) throws -> String? {
            switch value {
            case nil, .null?: return nil
            case .string(let text)?: return text
            default: throw JSONValueDecoder.Unsupported()
            }
        }
        bodyUUID = try string(fields.uuid)
        guard let taskName = try string(fields.taskName) else { throw JSONValueDecoder.Unsupported() }
        self.taskName = taskName
        switch fields.priority {
        case nil, .null?: priority = 0
        case .int(let number)?:
            guard let exact = Int(exactly: number) else { throw JSONValueDecoder.Unsupported() }
            priority = exact
        case .double(let number)?:
            guard let exact = Int(exactly: number) else { throw JSONValueDecoder.Unsupported() }
            priority = exact
        default: throw JSONValueDecoder.Unsupported()
        }
        switch fields.createdAt {
        case nil, .null?: bodyCreatedAt = nil
        case .some(let value): bodyCreatedAt = try JSONValueDecoder.double(value)
        }
        switch fields.workflow {
        case nil, .null?: workflow = nil
        case .some(let value):
            let userInfo: [CodingUserInfoKey: Any] = catalog.map { [Self.catalogKey: $0] } ?? [:]
            workflow = try JSONValueDecoder.decode(WorkflowContext.self, from: value, codingPath: [], userInfo: userInfo)
        }
        if taskName == WorkflowContext.startTaskName {
            guard workflow?.start != nil else { throw JSONValueDecoder.Unsupported() }
            call = PreparedCall(arguments: TaskArguments(args: [], kwargs: [:]), run: { _ in .null })
            return
        }
        var parsed = ParsedArguments(args: [], kwargs: [:], catalog: catalog, bodySize: bodySize)
        switch fields.args {
        case nil, .null?: break
        case .array(let values)?: parsed.args = values
        default: throw JSONValueDecoder.Unsupported()
        }
        switch fields.kwargs {
        case nil, .null?: break
        case .object(let values)?: parsed.kwargs = values
        default: throw JSONValueDecoder.Unsupported()
        }
        guard let catalog else {
            // Raw arguments, for TaskMessage.
            call = PreparedCall(arguments: TaskArguments(args: parsed.args, kwargs: parsed.kwargs), run: { _ in .null })
            return
        }
        guard let task = catalog.tasks[taskName] else { throw JSONValueDecoder.Unsupported() }
        call = try task.prepare(.values(parsed))
        options = task.options
    }

    private static func explain(_ error: any Error, body: [UInt8]) -> TaskInputError {
        // Invalid UTF-8 shows up as whatever string happened to be read
        // first; name the real cause.
        if !JSONDiagnostics.isValidUTF8(body) {
            return TaskInputError(.malformedJSON, "task message body is not valid UTF-8")
        }
        if let error = error as? TaskInputError { return error }
        if case DecodingError.dataCorrupted(let context) = error, context.codingPath.isEmpty {
            return TaskInputError(.malformedJSON, JSONDiagnostics.syntaxProblem(in: body))
        }
        if case DecodingError.typeMismatch(_, let context) = error, context.codingPath.isEmpty {
            return TaskInputError(.notAnObject, "task message must be a JSON object, found \(JSONDiagnostics.topLevelKind(of: body))")
        }
        return TaskInputError(.malformedJSON, "task message could not be read: \(DecodingErrorText.describe(error))")
    }

    init(from decoder: any Decoder) throws {
        let container: KeyedDecodingContainer<EnvelopeKey>
        do {
            container = try decoder.container(keyedBy: EnvelopeKey.self)
        } catch {
            let found = (try? decoder.singleValueContainer().decode(JSONValue.self))?.kindName ?? "something else"
            throw TaskInputError(.notAnObject, "task message must be a JSON object, found \(found)")
        }
        let uuid = try Self.field(String.self, .uuid, in: container, expected: "a string")
        guard let taskName = try Self.field(String.self, .taskName, in: container, expected: "a string", uuid: uuid) else {
            // The last rule of WireFormat: the message fits no format.
            throw TaskInputError(
                .invalidField,
                "task message has no task_name (QTasks), and fits no other format either: no header 'task' (Celery), no 'actor_name' (Dramatiq), no 'task_id' with 'labels' (Taskiq)",
                uuid: uuid)
        }
        self.bodyUUID = uuid
        self.taskName = taskName
        self.priority = try Self.priority(in: container, uuid: uuid, taskName: taskName)
        self.bodyCreatedAt = try Self.field(Double.self, .createdAt, in: container, expected: "a number (Unix seconds)", uuid: uuid, taskName: taskName)
        // decodeNil throws for an absent key: one lookup for "present and
        // not null".
        if (try? container.decodeNil(forKey: .workflow)) == false {
            do {
                self.workflow = try container.decode(WorkflowContext.self, forKey: .workflow)
            } catch {
                throw TaskInputError(.invalidField, "workflow: \(DecodingErrorText.describe(error))", uuid: uuid, taskName: taskName)
            }
        }
        if taskName == WorkflowContext.startTaskName {
            // Run by the worker itself (it publishes the first steps).
            guard workflow?.start != nil else {
                throw TaskInputError(.invalidField, "\(taskName) needs a workflow with a start step", uuid: uuid, taskName: taskName)
            }
            call = PreparedCall(arguments: TaskArguments(args: [], kwargs: [:]), run: { _ in .null })
            return
        }

        guard let catalog = decoder.userInfo[Self.catalogKey] as? TaskCatalog else {
            do {
                call = PreparedCall(arguments: try ArgumentReader.raw(from: container), run: { _ in .null })
            } catch let error as TaskInputError {
                throw error.reading(uuid: uuid, taskName: taskName)
            }
            return
        }
        guard let task = catalog.tasks[taskName] else {
            throw TaskInputError(.unknownTask, "unknown task '\(taskName)'", uuid: uuid, taskName: taskName)
        }
        do {
            call = try task.prepare(.container(container))
            options = task.options
        } catch let error as TaskInputError {
            throw error.reading(uuid: uuid, taskName: taskName)
        } catch {
            throw TaskInputError(.invalidArguments, "\(taskName)(): \(DecodingErrorText.describe(error))", uuid: uuid, taskName: taskName)
        }
    }

    /// Reads an optional field: absent and `null` give nil, a value of the
    /// wrong type throws `.invalidField`.
    private static func field<T: Decodable>(
        _ type: T.Type,
        _ key: EnvelopeKey,
        in container: KeyedDecodingContainer<EnvelopeKey>,
        expected: String,
        uuid: String? = nil,
        taskName: String? = nil
    ) throws -> T? {
        // One lookup (absent or null: nil), where contains + decodeNil +
        // decode made three: this runs for four fields of every task.
        do {
            return try container.decodeIfPresent(T.self, forKey: key)
        } catch {
            let found = DecodingErrorText.kind(of: key, in: container)
            throw TaskInputError(.invalidField, "\(key.stringValue) must be \(expected), found \(found)", uuid: uuid, taskName: taskName)
        }
    }

    private static func priority(
        in container: KeyedDecodingContainer<EnvelopeKey>,
        uuid: String?,
        taskName: String
    ) throws -> Int {
        // The usual case, absent or a plain integer, without building a
        // JSONValue; anything else (2.0, a string, ...) is judged below.
        do {
            return try container.decodeIfPresent(Int.self, forKey: .priority) ?? 0
        } catch {}
        guard let value = try field(JSONValue.self, .priority, in: container, expected: "an integer", uuid: uuid, taskName: taskName) else {
            return 0
        }
        switch value {
        case .int(let number) where Int(exactly: number) != nil:
            return Int(number)
        case .double(let number) where Int(exactly: number) != nil:
            return Int(number)
        case .int, .double:
            throw TaskInputError(.invalidField, "priority must be an integer, found \(value)", uuid: uuid, taskName: taskName)
        default:
            throw TaskInputError(.invalidField, "priority must be an integer, found \(value.kindName)", uuid: uuid, taskName: taskName)
        }
    }
}
