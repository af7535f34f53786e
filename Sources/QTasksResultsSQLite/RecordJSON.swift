import Foundation
import QTasks

/// The `record` column: a ``TaskRecord`` in its JSON form (the keys and
/// shapes of `TaskRecord`'s `Codable` conformance, which reads it), written
/// and read by hand for two reasons.
///
/// - Exact times. A `Date` holds seconds since 2001 in a `Double`; the same
///   instant in Unix seconds needs a bit more than a `Double` has, so
///   `Date(timeIntervalSince1970:)` of a `Double` is up to 2^-23 s (0.1 µs)
///   off the date that was written, and a record read back would not equal
///   the events it was built from. Times are written as the exact decimal
///   of the date's own `Double` (`1796505779.98300015926361083984375`, 23
///   digits after the point for dates of this century): a JSON number that
///   other readers (`Codable`) take as the nearest `Double`, the value
///   `timeIntervalSince1970` gives, and that this reader turns back into
///   the very `Date`. Durations likewise, to the
///   attosecond of `Duration` (`0.003`, `0.123456789`).
/// - Cost. A worker writes a record per task; `JSONEncoder` and
///   `JSONDecoder` are several times slower than this.
///
/// A `null` result of a successful task is kept as `.null` (`Codable` reads
/// it back as no result).
enum RecordJSON {
    /// The JSON text of `record`.
    static func encode(_ record: TaskRecord) -> [UInt8] {
        var writer = Writer()
        writer.record(record)
        return writer.bytes
    }

    /// A record from its JSON text.
    ///
    /// - Throws: ``RecordJSON/Failure`` when the text is not JSON or not a
    ///   record's.
    static func decode(_ data: Data) throws -> TaskRecord {
        let node = try data.withUnsafeBytes { raw in
            var parser = Parser(raw.bindMemory(to: UInt8.self))
            return try parser.document()
        }
        return try Mapper.record(node)
    }

    /// Why a stored text is not a record.
    struct Failure: Error, CustomStringConvertible {
        var description: String
        init(_ description: String) { self.description = description }
    }
}

// MARK: - Writing

extension RecordJSON {
    /// Seconds between 1970 and 2001, Foundation's reference date.
    static let referenceOffset: Int64 = 978_307_200

    struct Writer {
        var bytes: [UInt8] = []

        init() { bytes.reserveCapacity(1024) }

        mutating func record(_ record: TaskRecord) {
            var object = ObjectWriter(self)
            object.string("uuid", record.uuid)
            object.string("task_name", record.taskName)
            object.string("queue", record.queue)
            object.string("status", record.status.rawValue)
            object.int("priority", record.priority)
            if let arguments = record.arguments { object.key("arguments"); arguments.write(to: &object.writer) }
            object.int("attempt", record.attempt)
            object.string("worker_id", record.workerID)
            object.string("trace_id", record.traceID)
            object.date("created_at", record.createdAt)
            object.date("updated_at", record.updatedAt)
            object.date("started_at", record.startedAt)
            object.date("finished_at", record.finishedAt)
            object.duration("duration", record.duration)
            if let result = record.result { object.key("result"); object.writer.json(result) }
            if let failure = record.failure { object.key("failure"); object.writer.failure(failure) }
            object.duration("retry_delay", record.retryDelay)
            object.string("dead_letter_queue", record.deadLetterQueue)
            object.key("events")
            object.writer.byte(UInt8(ascii: "["))
            for (index, event) in record.events.enumerated() {
                if index > 0 { object.writer.byte(UInt8(ascii: ",")) }
                object.writer.event(event)
            }
            object.writer.byte(UInt8(ascii: "]"))
            self = object.end()
        }

        mutating func event(_ event: TaskEvent) {
            var object = ObjectWriter(self)
            object.string("kind", event.kind.rawValue)
            object.string("uuid", event.uuid)
            object.string("task_name", event.taskName)
            object.string("queue", event.queue)
            object.int("attempt", event.attempt)
            object.string("worker_id", event.workerID)
            object.date("timestamp", event.timestamp)
            object.date("created_at", event.createdAt)
            if let priority = event.priority { object.int("priority", priority) }
            object.duration("duration", event.duration)
            object.string("trace_id", event.traceID)
            if let arguments = event.arguments { object.key("arguments"); arguments.write(to: &object.writer) }
            if let result = event.result { object.key("result"); object.writer.json(result) }
            if let failure = event.failure { object.key("failure"); object.writer.failure(failure) }
            object.duration("retry_delay", event.retryDelay)
            object.string("dead_letter_queue", event.deadLetterQueue)
            self = object.end()
        }

        mutating func failure(_ failure: TaskEvent.Failure) {
            var object = ObjectWriter(self)
            object.string("type", failure.type)
            object.string("message", failure.message)
            object.string("traceback", failure.traceback)
            self = object.end()
        }

        mutating func byte(_ byte: UInt8) { bytes.append(byte) }

        mutating func text(_ text: String) { bytes.append(contentsOf: text.utf8) }

        /// JSONValue's compact text (non-finite numbers as `null`).
        mutating func json(_ value: JSONValue) { text(value.description) }

        mutating func string(_ value: String) {
            bytes.append(UInt8(ascii: "\""))
            for byte in value.utf8 {
                switch byte {
                case UInt8(ascii: "\""): bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\"")])
                case UInt8(ascii: "\\"): bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\\")])
                case 0x0A: bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "n")])
                case 0x0D: bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "r")])
                case 0x09: bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "t")])
                case 0x00..<0x20:
                    let hex = Array("0123456789abcdef".utf8)
                    bytes.append(contentsOf: [
                        UInt8(ascii: "\\"), UInt8(ascii: "u"), UInt8(ascii: "0"), UInt8(ascii: "0"),
                        hex[Int(byte >> 4)], hex[Int(byte & 0x0F)],
                    ])
                default: bytes.append(byte)
                }
            }
            bytes.append(UInt8(ascii: "\""))
        }

        /// Unix seconds, exactly the date's: the whole seconds, then the
        /// exact decimal fraction of the date's own `Double`. A date before
        /// 1970 (or not finite) is written as the nearest `Double`.
        mutating func date(_ date: Date) {
            let since2001 = date.timeIntervalSinceReferenceDate
            guard since2001.isFinite, abs(since2001) < 1e15 else {
                text(since2001.isFinite ? date.timeIntervalSince1970.description : "0")
                return
            }
            let whole = since2001.rounded(.down)
            let fraction = since2001 - whole  // exact, in 0..<1
            let unix = Int64(whole) + RecordJSON.referenceOffset
            guard unix >= 0 else {
                text(date.timeIntervalSince1970.description)
                return
            }
            text(String(unix))
            if fraction > 0 { fractionDigits(fraction) }
        }

        /// `.` and the exact decimal digits of a fraction in 0..<1 (a
        /// binary fraction has a finite decimal one: 23 digits for the
        /// dates of this century). Exact rather than shortest: a date that
        /// falls halfway between two `Double`s of Unix seconds then reads
        /// as the one `timeIntervalSince1970` gives (ties to even), not its
        /// neighbour.
        private mutating func fractionDigits(_ fraction: Double) {
            // As a 60-bit fixed-point number; finer fractions (dates within
            // minutes of 2001) fall back to the shortest form.
            let scaled = fraction * 0x1p60
            guard scaled == scaled.rounded(.towardZero), scaled < 0x1p60 else {
                shortestFractionDigits(fraction)
                return
            }
            var rest = UInt64(scaled)
            let mask: UInt64 = (1 << 60) - 1
            byte(UInt8(ascii: "."))
            while rest != 0 {
                rest *= 10  // < 10 · 2^60 < 2^64
                byte(UInt8(ascii: "0") + UInt8(rest >> 60))
                rest &= mask
            }
        }

        /// `.` and the digits of a fraction's shortest round-trip form,
        /// without an exponent.
        private mutating func shortestFractionDigits(_ fraction: Double) {
            let shortest = fraction.description
            guard let exponentMark = shortest.firstIndex(where: { $0 == "e" || $0 == "E" }) else {
                // "0.123"
                text(String(shortest.drop { $0 != "." }))
                return
            }
            // "1.25e-05": the significand's digits after -exponent-1 zeros.
            let significand = shortest[..<exponentMark].filter { $0 != "." }
            let exponent = Int(shortest[shortest.index(after: exponentMark)...]) ?? 0
            text(".")
            text(String(repeating: "0", count: max(0, -exponent - 1)))
            text(String(significand))
        }

        /// Seconds to the attosecond: `0.0021`, `1.5`, `30`.
        mutating func duration(_ duration: Duration) {
            let (seconds, attoseconds) = duration.components
            guard seconds >= 0, attoseconds >= 0 else {
                text(Seconds.double(duration).description)
                return
            }
            text(String(seconds))
            guard attoseconds > 0 else { return }
            var digits = String(attoseconds)
            digits = String(repeating: "0", count: 18 - digits.count) + digits
            while digits.last == "0" { digits.removeLast() }
            text(".")
            text(digits)
        }
    }

    /// Writes `{"key":value,…}`, skipping nil values.
    struct ObjectWriter {
        var writer: Writer
        private var first = true

        init(_ writer: Writer) {
            self.writer = writer
            self.writer.byte(UInt8(ascii: "{"))
        }

        mutating func key(_ key: String) {
            if !first { writer.byte(UInt8(ascii: ",")) }
            first = false
            writer.string(key)
            writer.byte(UInt8(ascii: ":"))
        }

        mutating func string(_ key: String, _ value: String?) {
            guard let value else { return }
            self.key(key)
            writer.string(value)
        }

        mutating func int(_ key: String, _ value: Int) {
            self.key(key)
            writer.text(String(value))
        }

        mutating func date(_ key: String, _ value: Date?) {
            guard let value else { return }
            self.key(key)
            writer.date(value)
        }

        mutating func duration(_ key: String, _ value: Duration?) {
            guard let value else { return }
            self.key(key)
            writer.duration(value)
        }

        consuming func end() -> Writer {
            writer.byte(UInt8(ascii: "}"))
            return writer
        }
    }
}

extension RecordedArguments {
    /// The `Codable` form: `{"omitted":true}`, or `args` and `kwargs`, and
    /// `truncated` and `text` when cut.
    fileprivate func write(to writer: inout RecordJSON.Writer) {
        var object = RecordJSON.ObjectWriter(writer)
        if omitted {
            object.key("omitted")
            object.writer.text("true")
        } else {
            object.key("args")
            object.writer.json(.array(args))
            object.key("kwargs")
            object.writer.json(.object(kwargs))
            if truncated {
                object.key("truncated")
                object.writer.text("true")
                object.string("text", text)
            }
        }
        writer = object.end()
    }
}

// MARK: - Reading

extension RecordJSON {
    /// A parsed JSON value; numbers keep their text (times and durations are
    /// read from it exactly).
    indirect enum Node {
        case null
        case bool(Bool)
        case number(String)
        case string(String)
        case array([Node])
        case object([String: Node])
    }

    /// A JSON parser over UTF-8 bytes (RFC 8259; nesting bounded).
    struct Parser {
        private let bytes: UnsafeBufferPointer<UInt8>
        private var index = 0
        private var depth = 0
        private static let maxDepth = 512

        init(_ bytes: UnsafeBufferPointer<UInt8>) { self.bytes = bytes }

        /// The one value of the text, with nothing but white space after it.
        mutating func document() throws -> Node {
            let node = try value()
            skipSpace()
            guard index == bytes.count else { throw failure("text after the JSON value") }
            return node
        }

        private func failure(_ what: String) -> Failure {
            Failure("not JSON at byte \(index): \(what)")
        }

        private mutating func skipSpace() {
            while index < bytes.count {
                switch bytes[index] {
                case 0x20, 0x09, 0x0A, 0x0D: index += 1
                default: return
                }
            }
        }

        private mutating func value() throws -> Node {
            skipSpace()
            guard index < bytes.count else { throw failure("unexpected end") }
            switch bytes[index] {
            case UInt8(ascii: "{"): return try object()
            case UInt8(ascii: "["): return try array()
            case UInt8(ascii: "\""): return .string(try string())
            case UInt8(ascii: "t"): try literal("true"); return .bool(true)
            case UInt8(ascii: "f"): try literal("false"); return .bool(false)
            case UInt8(ascii: "n"): try literal("null"); return .null
            case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return .number(try number())
            default: throw failure("unexpected character")
            }
        }

        private mutating func literal(_ word: StaticString) throws {
            let count = word.utf8CodeUnitCount
            guard index + count <= bytes.count else { throw failure("unexpected end") }
            for offset in 0..<count where bytes[index + offset] != word.utf8Start[offset] {
                throw failure("unexpected character")
            }
            index += count
        }

        private mutating func enter() throws {
            depth += 1
            guard depth <= Self.maxDepth else { throw failure("nested too deeply") }
            index += 1
        }

        private mutating func object() throws -> Node {
            try enter()
            var members: [String: Node] = [:]
            skipSpace()
            if index < bytes.count, bytes[index] == UInt8(ascii: "}") {
                index += 1
                depth -= 1
                return .object(members)
            }
            while true {
                skipSpace()
                guard index < bytes.count, bytes[index] == UInt8(ascii: "\"") else { throw failure("expected a key") }
                let key = try string()
                skipSpace()
                guard index < bytes.count, bytes[index] == UInt8(ascii: ":") else { throw failure("expected ':'") }
                index += 1
                members[key] = try value()
                skipSpace()
                guard index < bytes.count else { throw failure("unexpected end") }
                if bytes[index] == UInt8(ascii: ",") {
                    index += 1
                } else if bytes[index] == UInt8(ascii: "}") {
                    index += 1
                    depth -= 1
                    return .object(members)
                } else {
                    throw failure("expected ',' or '}'")
                }
            }
        }

        private mutating func array() throws -> Node {
            try enter()
            var elements: [Node] = []
            skipSpace()
            if index < bytes.count, bytes[index] == UInt8(ascii: "]") {
                index += 1
                depth -= 1
                return .array(elements)
            }
            while true {
                elements.append(try value())
                skipSpace()
                guard index < bytes.count else { throw failure("unexpected end") }
                if bytes[index] == UInt8(ascii: ",") {
                    index += 1
                } else if bytes[index] == UInt8(ascii: "]") {
                    index += 1
                    depth -= 1
                    return .array(elements)
                } else {
                    throw failure("expected ',' or ']'")
                }
            }
        }

        private mutating func number() throws -> String {
            let start = index
            func digits(_ index: inout Int, _ bytes: UnsafeBufferPointer<UInt8>) -> Int {
                let start = index
                while index < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[index]) { index += 1 }
                return index - start
            }
            if bytes[index] == UInt8(ascii: "-") { index += 1 }
            guard digits(&index, bytes) > 0 else { throw failure("bad number") }
            if index < bytes.count, bytes[index] == UInt8(ascii: ".") {
                index += 1
                guard digits(&index, bytes) > 0 else { throw failure("bad number") }
            }
            if index < bytes.count, bytes[index] == UInt8(ascii: "e") || bytes[index] == UInt8(ascii: "E") {
                index += 1
                if index < bytes.count, bytes[index] == UInt8(ascii: "+") || bytes[index] == UInt8(ascii: "-") { index += 1 }
                guard digits(&index, bytes) > 0 else { throw failure("bad number") }
            }
            return String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<index]), as: UTF8.self)
        }

        private mutating func string() throws -> String {
            index += 1  // the opening quote
            let start = index
            // Fast path: no escapes.
            while index < bytes.count {
                let byte = bytes[index]
                if byte == UInt8(ascii: "\"") {
                    let text = String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<index]), as: UTF8.self)
                    index += 1
                    return text
                }
                if byte == UInt8(ascii: "\\") { break }
                if byte < 0x20 { throw failure("control character in a string") }
                index += 1
            }
            var scalars = Array(UnsafeBufferPointer(rebasing: bytes[start..<index]))
            while index < bytes.count {
                let byte = bytes[index]
                index += 1
                switch byte {
                case UInt8(ascii: "\""):
                    return String(decoding: scalars, as: UTF8.self)
                case UInt8(ascii: "\\"):
                    guard index < bytes.count else { throw failure("unexpected end") }
                    let escape = bytes[index]
                    index += 1
                    switch escape {
                    case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): scalars.append(escape)
                    case UInt8(ascii: "b"): scalars.append(0x08)
                    case UInt8(ascii: "f"): scalars.append(0x0C)
                    case UInt8(ascii: "n"): scalars.append(0x0A)
                    case UInt8(ascii: "r"): scalars.append(0x0D)
                    case UInt8(ascii: "t"): scalars.append(0x09)
                    case UInt8(ascii: "u"):
                        var code = try hex4()
                        if (0xD800..<0xDC00).contains(code), index + 1 < bytes.count, bytes[index] == UInt8(ascii: "\\"),
                            bytes[index + 1] == UInt8(ascii: "u")
                        {
                            let saved = index
                            index += 2
                            let low = try hex4()
                            if (0xDC00..<0xE000).contains(low) {
                                code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
                            } else {
                                index = saved
                            }
                        }
                        // A lone surrogate becomes U+FFFD, as String(decoding:) does.
                        let scalar = Unicode.Scalar(code) ?? "\u{FFFD}"
                        scalars.append(contentsOf: String(Character(scalar)).utf8)
                    default:
                        throw failure("bad escape")
                    }
                default:
                    if byte < 0x20 { throw failure("control character in a string") }
                    scalars.append(byte)
                }
            }
            throw failure("unterminated string")
        }

        private mutating func hex4() throws -> UInt32 {
            guard index + 4 <= bytes.count else { throw failure("unexpected end") }
            var code: UInt32 = 0
            for _ in 0..<4 {
                let byte = bytes[index]
                index += 1
                let digit: UInt8
                switch byte {
                case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = byte - UInt8(ascii: "0")
                case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte - UInt8(ascii: "a") + 10
                case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = byte - UInt8(ascii: "A") + 10
                default: throw failure("bad \\u escape")
                }
                code = code << 4 | UInt32(digit)
            }
            return code
        }
    }
}

// MARK: - Mapping

extension RecordJSON {
    /// From parsed JSON to records, with `Codable`'s rules: the same keys
    /// required, the same defaults for missing ones, unknown keys ignored.
    enum Mapper {
        typealias Object = [String: Node]

        static func record(_ node: Node) throws -> TaskRecord {
            let object = try self.object(node, "record")
            return TaskRecord(
                uuid: try string(object, "uuid"),
                taskName: try string(object, "task_name"),
                queue: try optionalString(object, "queue") ?? "",
                status: TaskStatus(rawValue: try string(object, "status")),
                priority: try optionalInt(object, "priority") ?? 0,
                arguments: try object["arguments"].flatMap { node in try arguments(node) },
                attempt: try optionalInt(object, "attempt") ?? 1,
                workerID: try optionalString(object, "worker_id"),
                traceID: try optionalString(object, "trace_id"),
                createdAt: try optionalDate(object, "created_at") ?? Date(timeIntervalSince1970: 0),
                updatedAt: try optionalDate(object, "updated_at") ?? Date(timeIntervalSince1970: 0),
                startedAt: try optionalDate(object, "started_at"),
                finishedAt: try optionalDate(object, "finished_at"),
                duration: try optionalDuration(object, "duration"),
                result: try object["result"].map { node in try json(node) },
                failure: try optionalFailure(object, "failure"),
                retryDelay: try optionalDuration(object, "retry_delay"),
                deadLetterQueue: try optionalString(object, "dead_letter_queue"),
                events: try optionalArray(object, "events").map { node in try event(node) })
        }

        static func event(_ node: Node) throws -> TaskEvent {
            let object = try self.object(node, "event")
            guard let timestamp = try optionalDate(object, "timestamp") else { throw Failure("an event has no 'timestamp'") }
            let result: JSONValue? =
                switch object["result"] {
                case nil, .null?: nil
                case let node?: try json(node)
                }
            return TaskEvent(
                kind: TaskEvent.Kind(rawValue: try string(object, "kind")),
                uuid: try string(object, "uuid"),
                taskName: try string(object, "task_name"),
                queue: try string(object, "queue"),
                attempt: try int(object, "attempt"),
                workerID: try string(object, "worker_id"),
                timestamp: timestamp,
                createdAt: try optionalDate(object, "created_at"),
                priority: try optionalInt(object, "priority"),
                duration: try optionalDuration(object, "duration"),
                traceID: try optionalString(object, "trace_id"),
                arguments: try object["arguments"].flatMap { node in try arguments(node) },
                result: result,
                failure: try optionalFailure(object, "failure"),
                retryDelay: try optionalDuration(object, "retry_delay"),
                deadLetterQueue: try optionalString(object, "dead_letter_queue"))
        }

        /// `RecordedArguments`; nil for `null`.
        static func arguments(_ node: Node) throws -> RecordedArguments? {
            if case .null = node { return nil }
            let object = try self.object(node, "arguments")
            var arguments = RecordedArguments(
                args: try optionalArray(object, "args").map { node in try json(node) },
                kwargs: try optionalMembers(object, "kwargs"))
            arguments.truncated = try optionalBool(object, "truncated") ?? false
            arguments.text = try optionalString(object, "text")
            arguments.omitted = try optionalBool(object, "omitted") ?? false
            return arguments
        }

        /// A JSON value: integers that fit in `Int64` as `.int`, other
        /// numbers as `.double` (as `JSONValue`'s `Codable` reads them).
        static func json(_ node: Node) throws -> JSONValue {
            switch node {
            case .null: return .null
            case .bool(let value): return .bool(value)
            case .string(let value): return .string(value)
            case .number(let text):
                if !text.contains(where: { $0 == "." || $0 == "e" || $0 == "E" }), let value = Int64(text) {
                    return .int(value)
                }
                guard let value = Double(text) else { throw Failure("bad number \(text)") }
                return .double(value)
            case .array(let elements):
                var values: [JSONValue] = []
                values.reserveCapacity(elements.count)
                for element in elements { values.append(try json(element)) }
                return .array(values)
            case .object(let members):
                var values: [String: JSONValue] = [:]
                values.reserveCapacity(members.count)
                for (key, value) in members { values[key] = try json(value) }
                return .object(values)
            }
        }

        static func object(_ node: Node, _ what: String) throws -> Object {
            guard case .object(let object) = node else { throw Failure("the \(what) is not a JSON object") }
            return object
        }

        static func string(_ object: Object, _ key: String) throws -> String {
            guard let value = try optionalString(object, key) else { throw Failure("no '\(key)'") }
            return value
        }

        static func optionalString(_ object: Object, _ key: String) throws -> String? {
            switch object[key] {
            case nil, .null?: return nil
            case .string(let value)?: return value
            default: throw Failure("'\(key)' is not a string")
            }
        }

        static func optionalBool(_ object: Object, _ key: String) throws -> Bool? {
            switch object[key] {
            case nil, .null?: return nil
            case .bool(let value)?: return value
            default: throw Failure("'\(key)' is not a Boolean")
            }
        }

        static func int(_ object: Object, _ key: String) throws -> Int {
            guard let value = try optionalInt(object, key) else { throw Failure("no '\(key)'") }
            return value
        }

        static func optionalInt(_ object: Object, _ key: String) throws -> Int? {
            switch object[key] {
            case nil, .null?: return nil
            case .number(let text)?:
                if let value = Int(text) { return value }
                if let value = Double(text).flatMap({ Int(exactly: $0) }) { return value }
                throw Failure("'\(key)' is not an integer")
            default: throw Failure("'\(key)' is not a number")
            }
        }

        static func optionalArray(_ object: Object, _ key: String) throws -> [Node] {
            switch object[key] {
            case nil, .null?: return []
            case .array(let elements)?: return elements
            default: throw Failure("'\(key)' is not an array")
            }
        }

        static func optionalMembers(_ object: Object, _ key: String) throws -> [String: JSONValue] {
            switch object[key] {
            case nil, .null?: return [:]
            case .object(let members)?:
                var values: [String: JSONValue] = [:]
                values.reserveCapacity(members.count)
                for (key, value) in members { values[key] = try json(value) }
                return values
            default: throw Failure("'\(key)' is not an object")
            }
        }

        static func optionalFailure(_ object: Object, _ key: String) throws -> TaskEvent.Failure? {
            switch object[key] {
            case nil, .null?: return nil
            case let node?:
                let failure = try self.object(node, key)
                return TaskEvent.Failure(
                    type: try string(failure, "type"), message: try string(failure, "message"),
                    traceback: try string(failure, "traceback"))
            }
        }

        /// Unix seconds as a `Date`. This writer's exact decimals (more
        /// digits than a `Double` has) are read exactly, whole seconds and
        /// fraction apart (see ``RecordJSON``); other numbers, such as
        /// `JSONEncoder`'s, as `Codable` reads them:
        /// `Date(timeIntervalSince1970:)` of their `Double`.
        static func optionalDate(_ object: Object, _ key: String) throws -> Date? {
            switch object[key] {
            case nil, .null?: return nil
            case .number(let text)?:
                if let date = exactDate(text) { return date }
                guard let seconds = Double(text), seconds.isFinite else { throw Failure("'\(key)' is not a time") }
                return Date(timeIntervalSince1970: seconds)
            default: throw Failure("'\(key)' is not a number")
            }
        }

        /// The date of an exact decimal: over 17 significant digits, no
        /// sign, no exponent. Nil for other numbers (17 digits or fewer are
        /// the shortest form of some `Double`: what `Codable` wrote).
        static func exactDate(_ text: String) -> Date? {
            guard text.utf8.count > 17, text.first != "-", !text.contains(where: { $0 == "e" || $0 == "E" }) else {
                return nil
            }
            let significant = text.drop { $0 == "0" || $0 == "." }.filter { $0 != "." }.count
            let dot = text.firstIndex(of: ".")
            guard significant > 17, let whole = Int64(text[..<(dot ?? text.endIndex)]), whole < 1_000_000_000_000_000
            else { return nil }
            var since2001 = Double(whole - RecordJSON.referenceOffset)
            if let dot {
                guard let fraction = Double("0" + text[dot...]) else { return nil }
                since2001 += fraction
            }
            return Date(timeIntervalSinceReferenceDate: since2001)
        }

        /// Seconds as a `Duration`: plain decimals exactly (to the
        /// attosecond), other numbers through `Double`.
        static func optionalDuration(_ object: Object, _ key: String) throws -> Duration? {
            switch object[key] {
            case nil, .null?: return nil
            case .number(let text)?:
                if let duration = exactDuration(text) { return duration }
                guard let seconds = Double(text), seconds.isFinite else { throw Failure("'\(key)' is not a duration") }
                return Duration.seconds(seconds)
            default: throw Failure("'\(key)' is not a number")
            }
        }

        static func exactDuration(_ text: String) -> Duration? {
            let dot = text.firstIndex(of: ".")
            guard text.first != "-", !text.contains(where: { $0 == "e" || $0 == "E" }),
                let seconds = Int64(text[..<(dot ?? text.endIndex)])
            else { return nil }
            var attoseconds: Int64 = 0
            if let dot {
                let digits = text[text.index(after: dot)...]
                guard digits.count <= 18, let value = Int64(digits + String(repeating: "0", count: 18 - digits.count))
                else { return nil }
                attoseconds = value
            }
            return Duration(secondsComponent: seconds, attosecondsComponent: attoseconds)
        }
    }
}

