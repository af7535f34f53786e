import Foundation

/// A ``TaskRecord`` and a ``TaskEvent`` in their JSON forms (the keys and
/// values of their `Codable`, the form of `qtasks result --json`), written
/// and read by hand: what the result stores keep per record, and what the
/// events exchange carries.
///
/// By hand rather than with `JSONEncoder`/`JSONDecoder`: those cost some
/// 50 µs a record each way, which made them most of a store's batch time.
/// The `Codable` conformances read what this writes and this reads what
/// they write (TaskRecordJSONTests checks both directions). Times are Unix
/// seconds: a `Date` read back is within a microsecond of the one written
/// (a `Date` counts from 2001, and the conversion rounds).
package enum TaskRecordJSON {
    package struct Invalid: Error, CustomStringConvertible {
        package var message: String
        package var description: String { message }
    }

    // MARK: - Writing

    /// The record's JSON text.
    package static func encode(_ record: TaskRecord) -> String {
        var writer = Writer()
        writer.bytes.reserveCapacity(512 + record.events.count * 200)
        writer.open()
        writer.key("uuid"); writer.string(record.uuid)
        writer.key("task_name"); writer.string(record.taskName)
        writer.key("queue"); writer.string(record.queue)
        writer.key("status"); writer.string(record.status.rawValue)
        writer.key("priority"); writer.int(record.priority)
        if let arguments = record.arguments {
            writer.key("arguments"); writer.arguments(arguments)
        }
        writer.key("attempt"); writer.int(record.attempt)
        if let workerID = record.workerID { writer.key("worker_id"); writer.string(workerID) }
        if let traceID = record.traceID { writer.key("trace_id"); writer.string(traceID) }
        writer.key("created_at"); writer.double(record.createdAt.timeIntervalSince1970)
        writer.key("updated_at"); writer.double(record.updatedAt.timeIntervalSince1970)
        if let startedAt = record.startedAt { writer.key("started_at"); writer.double(startedAt.timeIntervalSince1970) }
        if let finishedAt = record.finishedAt { writer.key("finished_at"); writer.double(finishedAt.timeIntervalSince1970) }
        if let duration = record.duration { writer.key("duration"); writer.double(Seconds.double(duration)) }
        if let result = record.result { writer.key("result"); writer.raw(result.description) }
        if let failure = record.failure { writer.key("failure"); writer.failure(failure) }
        if let retryDelay = record.retryDelay { writer.key("retry_delay"); writer.double(Seconds.double(retryDelay)) }
        if let deadLetterQueue = record.deadLetterQueue { writer.key("dead_letter_queue"); writer.string(deadLetterQueue) }
        writer.key("events")
        writer.bytes.append(UInt8(ascii: "["))
        for (index, event) in record.events.enumerated() {
            if index > 0 { writer.bytes.append(UInt8(ascii: ",")) }
            writer.event(event)
        }
        writer.bytes.append(UInt8(ascii: "]"))

        writer.close()
        return String(decoding: writer.bytes, as: UTF8.self)
    }

    /// An event's JSON text (the events exchange's message body).
    package static func encode(_ event: TaskEvent) -> [UInt8] {
        var writer = Writer()
        writer.bytes.reserveCapacity(256)
        writer.event(event)
        return writer.bytes
    }

    /// An event from its JSON text.
    ///
    /// - Throws: ``JSONParser/Failure`` or ``Invalid``.
    package static func decodeEvent(_ text: some Collection<UInt8>) throws -> TaskEvent {
        try event(Object(JSONParser.parse(text), path: "event"))
    }

    private struct Writer {
        var bytes: [UInt8] = []
        /// Whether the object being written has no member yet, per level.
        private var empty: [Bool] = []

        mutating func open() {
            bytes.append(UInt8(ascii: "{"))
            empty.append(true)
        }

        mutating func close() {
            bytes.append(UInt8(ascii: "}"))
            empty.removeLast()
        }

        mutating func key(_ name: StaticString) {
            if empty[empty.count - 1] {
                empty[empty.count - 1] = false
            } else {
                bytes.append(UInt8(ascii: ","))
            }
            bytes.append(UInt8(ascii: "\""))
            bytes.append(contentsOf: UnsafeBufferPointer(start: name.utf8Start, count: name.utf8CodeUnitCount))
            bytes.append(UInt8(ascii: "\""))
            bytes.append(UInt8(ascii: ":"))
        }

        mutating func raw(_ text: String) { bytes.append(contentsOf: text.utf8) }

        mutating func int(_ value: Int) { bytes.append(contentsOf: String(value).utf8) }

        /// Non-finite values (which JSON cannot spell) as `null`, as
        /// ``JSONValue`` writes them.
        mutating func double(_ value: Double) {
            guard value.isFinite else {
                bytes.append(contentsOf: "null".utf8)
                return
            }
            bytes.append(contentsOf: value.description.utf8)
        }

        mutating func string(_ value: String) {
            bytes.append(UInt8(ascii: "\""))
            for byte in value.utf8 {
                switch byte {
                case UInt8(ascii: "\""): bytes.append(UInt8(ascii: "\\")); bytes.append(UInt8(ascii: "\""))
                case UInt8(ascii: "\\"): bytes.append(UInt8(ascii: "\\")); bytes.append(UInt8(ascii: "\\"))
                case 0x0A: bytes.append(UInt8(ascii: "\\")); bytes.append(UInt8(ascii: "n"))
                case 0x0D: bytes.append(UInt8(ascii: "\\")); bytes.append(UInt8(ascii: "r"))
                case 0x09: bytes.append(UInt8(ascii: "\\")); bytes.append(UInt8(ascii: "t"))
                case 0x00..<0x20:
                    let hex: StaticString = "0123456789abcdef"
                    bytes.append(contentsOf: "\\u00".utf8)
                    bytes.append(hex.utf8Start[Int(byte >> 4)])
                    bytes.append(hex.utf8Start[Int(byte & 0x0F)])
                default: bytes.append(byte)
                }
            }
            bytes.append(UInt8(ascii: "\""))
        }

        mutating func arguments(_ arguments: RecordedArguments) {
            open()
            if arguments.omitted {
                key("omitted"); raw("true")
            } else {
                key("args"); raw(JSONValue.array(arguments.args).description)
                key("kwargs"); raw(JSONValue.object(arguments.kwargs).description)
                if arguments.truncated {
                    key("truncated"); raw("true")
                    if let text = arguments.text { key("text"); string(text) }
                }
            }
            close()
        }

        mutating func failure(_ failure: TaskEvent.Failure) {
            open()
            key("type"); string(failure.type)
            key("message"); string(failure.message)
            key("traceback"); string(failure.traceback)
            close()
        }

        mutating func event(_ event: TaskEvent) {
            open()
            key("kind"); string(event.kind.rawValue)
            key("uuid"); string(event.uuid)
            key("task_name"); string(event.taskName)
            key("queue"); string(event.queue)
            key("attempt"); int(event.attempt)
            key("worker_id"); string(event.workerID)
            key("timestamp"); double(event.timestamp.timeIntervalSince1970)
            if let createdAt = event.createdAt { key("created_at"); double(createdAt.timeIntervalSince1970) }
            if let priority = event.priority { key("priority"); int(priority) }
            if let duration = event.duration { key("duration"); double(Seconds.double(duration)) }
            if let traceID = event.traceID { key("trace_id"); string(traceID) }
            if let arguments = event.arguments { key("arguments"); self.arguments(arguments) }
            if let result = event.result { key("result"); raw(result.description) }
            if let failure = event.failure { key("failure"); self.failure(failure) }
            if let retryDelay = event.retryDelay { key("retry_delay"); double(Seconds.double(retryDelay)) }
            if let deadLetterQueue = event.deadLetterQueue { key("dead_letter_queue"); string(deadLetterQueue) }
            close()
        }
    }

    // MARK: - Reading

    /// A record from its JSON text (ours, or `JSONEncoder`'s of a
    /// ``TaskRecord``), with the defaults of ``TaskRecord``'s `Decodable`
    /// for the keys it may lack.
    ///
    /// - Throws: ``JSONParser/Failure`` or ``Invalid``.
    package static func decode(_ text: some Collection<UInt8>) throws -> TaskRecord {
        let object = try Object(JSONParser.parse(text), path: "record")
        let record = TaskRecord(
            uuid: try object.string("uuid"),
            taskName: try object.string("task_name"),
            queue: try object.optionalString("queue") ?? "",
            status: TaskStatus(rawValue: try object.string("status")),
            priority: try object.optionalInt("priority") ?? 0,
            arguments: try object.optionalObject("arguments").map(arguments),
            attempt: try object.optionalInt("attempt") ?? 1,
            workerID: try object.optionalString("worker_id"),
            traceID: try object.optionalString("trace_id"),
            createdAt: try object.optionalDate("created_at") ?? Date(timeIntervalSince1970: 0),
            updatedAt: try object.optionalDate("updated_at") ?? Date(timeIntervalSince1970: 0),
            startedAt: try object.optionalDate("started_at"),
            finishedAt: try object.optionalDate("finished_at"),
            duration: try object.optionalDuration("duration"),
            // `null` stays `.null` (a success that returned nothing).
            result: object.members["result"],
            failure: try object.optionalObject("failure").map(failure),
            retryDelay: try object.optionalDuration("retry_delay"),
            deadLetterQueue: try object.optionalString("dead_letter_queue"),
            events: try object.optionalArray("events").map { elements in
                try elements.enumerated().map { index, element in
                    try event(Object(element, path: "events[\(index)]"))
                }
            } ?? [])
        return record
    }

    private static func arguments(_ object: Object) throws -> RecordedArguments {
        var arguments = RecordedArguments(
            args: try object.optionalArray("args") ?? [],
            kwargs: try object.optionalObject("kwargs")?.members ?? [:])
        arguments.truncated = try object.optionalBool("truncated") ?? false
        arguments.text = try object.optionalString("text")
        arguments.omitted = try object.optionalBool("omitted") ?? false
        return arguments
    }

    private static func failure(_ object: Object) throws -> TaskEvent.Failure {
        TaskEvent.Failure(
            type: try object.string("type"), message: try object.string("message"),
            traceback: try object.string("traceback"))
    }

    private static func event(_ object: Object) throws -> TaskEvent {
        TaskEvent(
            kind: TaskEvent.Kind(rawValue: try object.string("kind")),
            uuid: try object.string("uuid"),
            taskName: try object.string("task_name"),
            queue: try object.string("queue"),
            attempt: try object.int("attempt"),
            workerID: try object.string("worker_id"),
            timestamp: try object.date("timestamp"),
            createdAt: try object.optionalDate("created_at"),
            priority: try object.optionalInt("priority"),
            duration: try object.optionalDuration("duration"),
            traceID: try object.optionalString("trace_id"),
            arguments: try object.optionalObject("arguments").map(arguments),
            result: object.members["result"],
            failure: try object.optionalObject("failure").map(failure),
            retryDelay: try object.optionalDuration("retry_delay"),
            deadLetterQueue: try object.optionalString("dead_letter_queue"))
    }

    /// A JSON object's members, read with errors that name the path.
    private struct Object {
        let members: [String: JSONValue]
        let path: String

        init(_ value: JSONValue, path: String) throws {
            guard case .object(let members) = value else { throw Invalid(message: "\(path) is not a JSON object") }
            self.members = members
            self.path = path
        }

        func value(_ key: String) -> JSONValue? {
            guard let value = members[key], !value.isNull else { return nil }
            return value
        }

        private func wrong(_ key: String, _ expected: String) -> Invalid {
            Invalid(message: "\(path).\(key) is not \(expected): \(members[key].map(\.description) ?? "missing")")
        }

        func string(_ key: String) throws -> String {
            guard let text = try optionalString(key) else { throw wrong(key, "a string") }
            return text
        }

        func optionalString(_ key: String) throws -> String? {
            guard let value = value(key) else { return nil }
            guard case .string(let text) = value else { throw wrong(key, "a string") }
            return text
        }

        func int(_ key: String) throws -> Int {
            guard let number = try optionalInt(key) else { throw wrong(key, "an integer") }
            return number
        }

        func optionalInt(_ key: String) throws -> Int? {
            guard let value = value(key) else { return nil }
            switch value {
            case .int(let number): if let exact = Int(exactly: number) { return exact }
            case .double(let number): if let exact = Int(exactly: number) { return exact }
            default: break
            }
            throw wrong(key, "an integer")
        }

        func optionalDouble(_ key: String) throws -> Double? {
            guard let value = value(key) else { return nil }
            guard let number = value.doubleValue else { throw wrong(key, "a number") }
            return number
        }

        func optionalBool(_ key: String) throws -> Bool? {
            guard let value = value(key) else { return nil }
            guard case .bool(let flag) = value else { throw wrong(key, "true or false") }
            return flag
        }

        func date(_ key: String) throws -> Date {
            guard let date = try optionalDate(key) else { throw wrong(key, "a time") }
            return date
        }

        func optionalDate(_ key: String) throws -> Date? {
            try optionalDouble(key).map(Date.init(timeIntervalSince1970:))
        }

        func optionalDuration(_ key: String) throws -> Duration? {
            try optionalDouble(key).map { Duration.seconds($0) }
        }

        func optionalArray(_ key: String) throws -> [JSONValue]? {
            guard let value = value(key) else { return nil }
            guard case .array(let elements) = value else { throw wrong(key, "an array") }
            return elements
        }

        func optionalObject(_ key: String) throws -> Object? {
            guard let value = value(key) else { return nil }
            return try Object(value, path: "\(path).\(key)")
        }
    }
}
