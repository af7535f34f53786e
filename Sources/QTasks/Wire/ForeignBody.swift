import Foundation

/// Reading the JSON object bodies of foreign formats (Dramatiq, Taskiq)
/// and writing the QTasks body they become.
enum ForeignBody {
    /// The body's top-level object.
    ///
    /// - Throws: ``TaskInputError`` `.malformedJSON` / `.notAnObject`.
    static func object(_ body: [UInt8], format: String) throws(TaskInputError) -> [String: JSONValue] {
        guard JSONDiagnostics.isValidUTF8(body) else {
            throw TaskInputError(.malformedJSON, "task message body is not valid UTF-8")
        }
        let parsed: JSONValue
        do {
            parsed = try JSONDecoder().decode(JSONValue.self, from: Data(body))
        } catch {
            throw TaskInputError(.malformedJSON, JSONDiagnostics.syntaxProblem(in: body))
        }
        guard case .object(let fields) = parsed else {
            throw TaskInputError(.notAnObject, "\(format) message must be a JSON object, found \(parsed.kindName)")
        }
        return fields
    }

    /// `{"uuid", "task_name", "args", "kwargs"[, "created_at"]}`.
    static func qtasksBody(
        uuid: String, taskName: String, args: [JSONValue], kwargs: [String: JSONValue], createdAt: Double?
    ) -> [UInt8] {
        var fields: [String: JSONValue] = [
            "uuid": .string(uuid), "task_name": .string(taskName), "args": .array(args), "kwargs": .object(kwargs),
        ]
        if let createdAt { fields["created_at"] = .double(createdAt) }
        var bytes: [UInt8] = []
        JSONValue.object(fields).write(to: &bytes)
        return bytes
    }

    /// A number of seconds or milliseconds from a JSON number, or a string
    /// holding one (Taskiq's labels may arrive as strings).
    static func number(_ value: JSONValue) -> Double? {
        switch value {
        case .int(let number): return Double(number)
        case .double(let number) where number.isFinite: return number
        case .string(let text): return Double(text.trimmingCharacters(in: .whitespaces)).flatMap { $0.isFinite ? $0 : nil }
        default: return nil
        }
    }
}
