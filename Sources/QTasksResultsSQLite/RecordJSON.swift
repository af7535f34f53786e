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
///   the very `Date`. Durations likewise, to the attosecond of `Duration`
///   (`0.003`, `0.123456789`).
/// - Cost. A worker writes a record per task, and reads one back for each
///   task whose events span two batches; `JSONEncoder` and `JSONDecoder`
///   cost several times more.
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
        try data.withUnsafeBytes { raw in
            var reader = Reader(raw.bindMemory(to: UInt8.self))
            let record = try reader.record()
            try reader.end()
            return record
        }
    }

    /// Why a stored text is not a record.
    struct Failure: Error, CustomStringConvertible {
        var description: String
        init(_ description: String) { self.description = description }
    }

    /// Seconds between 1970 and 2001, Foundation's reference date.
    static let referenceOffset: Int64 = 978_307_200
}

// MARK: - Writing

extension RecordJSON {
    /// Appends JSON to one byte buffer. Objects and arrays are opened and
    /// closed around their members; `separate` puts the commas.
    struct Writer {
        var bytes: [UInt8] = []
        /// No member written yet in the innermost open object or array.
        private var first = true

        init() { bytes.reserveCapacity(1536) }

        mutating func record(_ record: TaskRecord) {
            open(UInt8(ascii: "{"))
            string("uuid", record.uuid)
            string("task_name", record.taskName)
            string("queue", record.queue)
            string("status", record.status.rawValue)
            int("priority", record.priority)
            if let arguments = record.arguments {
                key("arguments")
                self.arguments(arguments)
            }
            int("attempt", record.attempt)
            string("worker_id", record.workerID)
            string("trace_id", record.traceID)
            date("created_at", record.createdAt)
            date("updated_at", record.updatedAt)
            date("started_at", record.startedAt)
            date("finished_at", record.finishedAt)
            duration("duration", record.duration)
            if let result = record.result {
                key("result")
                json(result)
            }
            if let failure = record.failure {
                key("failure")
                self.failure(failure)
            }
            duration("retry_delay", record.retryDelay)
            string("dead_letter_queue", record.deadLetterQueue)
            key("events")
            open(UInt8(ascii: "["))
            for event in record.events {
                separate()
                self.event(event)
            }
            close(UInt8(ascii: "]"))
            close(UInt8(ascii: "}"))
        }

        mutating func event(_ event: TaskEvent) {
            open(UInt8(ascii: "{"))
            string("kind", event.kind.rawValue)
            string("uuid", event.uuid)
            string("task_name", event.taskName)
            string("queue", event.queue)
            int("attempt", event.attempt)
            string("worker_id", event.workerID)
            date("timestamp", event.timestamp)
            date("created_at", event.createdAt)
            if let priority = event.priority { int("priority", priority) }
            duration("duration", event.duration)
            string("trace_id", event.traceID)
            if let arguments = event.arguments {
                key("arguments")
                self.arguments(arguments)
            }
            if let result = event.result {
                key("result")
                json(result)
            }
            if let failure = event.failure {
                key("failure")
                self.failure(failure)
            }
            duration("retry_delay", event.retryDelay)
            string("dead_letter_queue", event.deadLetterQueue)
            close(UInt8(ascii: "}"))
        }

        mutating func failure(_ failure: TaskEvent.Failure) {
            open(UInt8(ascii: "{"))
            string("type", failure.type)
            string("message", failure.message)
            string("traceback", failure.traceback)
            close(UInt8(ascii: "}"))
        }

        /// `RecordedArguments`' `Codable` form: `{"omitted":true}`, or `args`
        /// and `kwargs`, and `truncated` and `text` when cut.
        mutating func arguments(_ arguments: RecordedArguments) {
            open(UInt8(ascii: "{"))
            if arguments.omitted {
                key("omitted")
                raw("true")
            } else {
                key("args")
                json(.array(arguments.args))
                key("kwargs")
                json(.object(arguments.kwargs))
                if arguments.truncated {
                    key("truncated")
                    raw("true")
                    string("text", arguments.text)
                }
            }
            close(UInt8(ascii: "}"))
        }

        // MARK: Structure

        private mutating func open(_ bracket: UInt8) {
            bytes.append(bracket)
            first = true
        }

        private mutating func close(_ bracket: UInt8) {
            bytes.append(bracket)
            first = false
        }

        /// A comma unless this is the first member.
        private mutating func separate() {
            if !first { bytes.append(UInt8(ascii: ",")) }
            first = false
        }

        /// `,"key":` (keys are plain ASCII: not escaped).
        private mutating func key(_ key: StaticString) {
            separate()
            bytes.append(UInt8(ascii: "\""))
            key.withUTF8Buffer { bytes.append(contentsOf: $0) }
            bytes.append(UInt8(ascii: "\""))
            bytes.append(UInt8(ascii: ":"))
        }

        private mutating func string(_ key: StaticString, _ value: String?) {
            guard let value else { return }
            self.key(key)
            string(value)
        }

        private mutating func int(_ key: StaticString, _ value: Int) {
            self.key(key)
            integer(Int64(value))
        }

        private mutating func date(_ key: StaticString, _ value: Date?) {
            guard let value else { return }
            self.key(key)
            date(value)
        }

        private mutating func duration(_ key: StaticString, _ value: Duration?) {
            guard let value else { return }
            self.key(key)
            duration(value)
        }

        // MARK: Values

        private mutating func raw(_ text: StaticString) {
            text.withUTF8Buffer { bytes.append(contentsOf: $0) }
        }

        /// JSONValue's compact text (non-finite numbers as `null`).
        private mutating func json(_ value: JSONValue) {
            switch value {
            case .null: raw("null")
            case .bool(let value): value ? raw("true") : raw("false")
            case .int(let value): integer(value)
            case .string(let value): string(value)
            default: bytes.append(contentsOf: value.description.utf8)
            }
        }

        /// A JSON string: `"`, `\`, and control characters escaped;
        /// everything else, non-ASCII included, as it is.
        mutating func string(_ value: String) {
            var value = value
            value.makeContiguousUTF8()
            let written: Void? = value.utf8.withContiguousStorageIfAvailable { utf8 in
                bytes.append(UInt8(ascii: "\""))
                var plainFrom = 0
                for index in utf8.indices {
                    let byte = utf8[index]
                    guard byte < 0x20 || byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") else { continue }
                    bytes.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[plainFrom..<index]))
                    plainFrom = index + 1
                    bytes.append(UInt8(ascii: "\\"))
                    switch byte {
                    case UInt8(ascii: "\""), UInt8(ascii: "\\"): bytes.append(byte)
                    case 0x0A: bytes.append(UInt8(ascii: "n"))
                    case 0x0D: bytes.append(UInt8(ascii: "r"))
                    case 0x09: bytes.append(UInt8(ascii: "t"))
                    default:
                        let hex: StaticString = "0123456789abcdef"
                        bytes.append(UInt8(ascii: "u"))
                        bytes.append(UInt8(ascii: "0"))
                        bytes.append(UInt8(ascii: "0"))
                        bytes.append(hex.utf8Start[Int(byte >> 4)])
                        bytes.append(hex.utf8Start[Int(byte & 0x0F)])
                    }
                }
                bytes.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[plainFrom...]))
                bytes.append(UInt8(ascii: "\""))
            }
            // Not reached: a native string is contiguous after makeContiguousUTF8.
            if written == nil { bytes.append(contentsOf: JSONValue.string(value).description.utf8) }
        }

        private mutating func integer(_ value: Int64) {
            if value < 0 { bytes.append(UInt8(ascii: "-")) }
            unsigned(value.magnitude)
        }

        private mutating func unsigned(_ value: UInt64, minimumDigits: Int = 1) {
            var digits: (UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0)  // 32 bytes of room
            withUnsafeMutableBytes(of: &digits) { buffer in
                var end = buffer.count
                var rest = value
                repeat {
                    end -= 1
                    buffer[end] = UInt8(ascii: "0") + UInt8(rest % 10)
                    rest /= 10
                } while rest != 0 || buffer.count - end < minimumDigits
                bytes.append(contentsOf: buffer[end...])
            }
        }

        /// Unix seconds, exactly the date's: the whole seconds, then the
        /// exact decimal fraction of the date's own `Double`. A date before
        /// 1970 (or not finite) is written as the nearest `Double`.
        mutating func date(_ date: Date) {
            let since2001 = date.timeIntervalSinceReferenceDate
            guard since2001.isFinite, abs(since2001) < 1e15 else {
                bytes.append(contentsOf: (since2001.isFinite ? date.timeIntervalSince1970.description : "0").utf8)
                return
            }
            let whole = since2001.rounded(.down)
            let fraction = since2001 - whole  // exact, in 0..<1
            let unix = Int64(whole) + RecordJSON.referenceOffset
            guard unix >= 0 else {
                bytes.append(contentsOf: date.timeIntervalSince1970.description.utf8)
                return
            }
            unsigned(UInt64(unix))
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
            bytes.append(UInt8(ascii: "."))
            while rest != 0 {
                rest *= 10  // < 10 · 2^60 < 2^64
                bytes.append(UInt8(ascii: "0") + UInt8(rest >> 60))
                rest &= mask
            }
        }

        /// `.` and the digits of a fraction's shortest round-trip form,
        /// without an exponent.
        private mutating func shortestFractionDigits(_ fraction: Double) {
            let shortest = fraction.description
            guard let exponentMark = shortest.firstIndex(where: { $0 == "e" || $0 == "E" }) else {
                // "0.123"
                bytes.append(contentsOf: shortest.drop { $0 != "." }.utf8)
                return
            }
            // "1.25e-05": the significand's digits after -exponent-1 zeros.
            let significand = shortest[..<exponentMark].filter { $0 != "." }
            let exponent = Int(shortest[shortest.index(after: exponentMark)...]) ?? 0
            bytes.append(UInt8(ascii: "."))
            bytes.append(contentsOf: repeatElement(UInt8(ascii: "0"), count: max(0, -exponent - 1)))
            bytes.append(contentsOf: significand.utf8)
        }

        /// Seconds to the attosecond: `0.0021`, `1.5`, `30`.
        mutating func duration(_ duration: Duration) {
            let (seconds, attoseconds) = duration.components
            guard seconds >= 0, attoseconds >= 0 else {
                bytes.append(contentsOf: Seconds.double(duration).description.utf8)
                return
            }
            unsigned(UInt64(seconds))
            guard attoseconds > 0 else { return }
            var fraction = UInt64(attoseconds)
            var digits = 18
            while fraction % 10 == 0 {
                fraction /= 10
                digits -= 1
            }
            bytes.append(UInt8(ascii: "."))
            unsigned(fraction, minimumDigits: digits)
        }
    }
}

// MARK: - Reading

extension RecordJSON {
    /// Reads a record straight from UTF-8 bytes (RFC 8259 JSON; nesting
    /// bounded), with `Codable`'s rules: the same keys required, the same
    /// defaults for missing ones, `null` as missing, unknown keys skipped.
    struct Reader {
        private let bytes: UnsafeBufferPointer<UInt8>
        private var index = 0
        private var depth = 0
        private static let maxDepth = 512

        init(_ bytes: UnsafeBufferPointer<UInt8>) { self.bytes = bytes }

        // MARK: Records

        mutating func record() throws -> TaskRecord {
            var uuid: String?
            var taskName: String?
            var status: String?
            var record = TaskRecord(
                uuid: "", taskName: "", queue: "", status: .new, createdAt: Date(timeIntervalSince1970: 0),
                updatedAt: Date(timeIntervalSince1970: 0))
            try object { reader, key in
                switch key {
                case "uuid": uuid = try reader.optional { try $0.string() }
                case "task_name": taskName = try reader.optional { try $0.string() }
                case "queue": record.queue = try reader.optional { try $0.string() } ?? ""
                case "status": status = try reader.optional { try $0.string() }
                case "priority": record.priority = try reader.optional { try $0.int() } ?? 0
                case "arguments": record.arguments = try reader.optional { try $0.arguments() }
                case "attempt": record.attempt = try reader.optional { try $0.int() } ?? 1
                case "worker_id": record.workerID = try reader.optional { try $0.string() }
                case "trace_id": record.traceID = try reader.optional { try $0.string() }
                case "created_at":
                    record.createdAt = try reader.optional { try $0.date() } ?? Date(timeIntervalSince1970: 0)
                case "updated_at":
                    record.updatedAt = try reader.optional { try $0.date() } ?? Date(timeIntervalSince1970: 0)
                case "started_at": record.startedAt = try reader.optional { try $0.date() }
                case "finished_at": record.finishedAt = try reader.optional { try $0.date() }
                case "duration": record.duration = try reader.optional { try $0.duration() }
                // Kept when null: a success that returned nothing.
                case "result": record.result = try reader.json()
                case "failure": record.failure = try reader.optional { try $0.failure() }
                case "retry_delay": record.retryDelay = try reader.optional { try $0.duration() }
                case "dead_letter_queue": record.deadLetterQueue = try reader.optional { try $0.string() }
                case "events":
                    var events: [TaskEvent] = []
                    _ = try reader.optional { reader in try reader.array { events.append(try $0.event()) } }
                    record.events = events
                default: try reader.skip()
                }
            }
            guard let uuid else { throw Failure("the record has no 'uuid'") }
            guard let taskName else { throw Failure("the record has no 'task_name'") }
            guard let status else { throw Failure("the record has no 'status'") }
            record.uuid = uuid
            record.taskName = taskName
            record.status = TaskStatus(rawValue: status)
            return record
        }

        mutating func event() throws -> TaskEvent {
            var kind: String?
            var uuid: String?
            var taskName: String?
            var queue: String?
            var attempt: Int?
            var workerID: String?
            var timestamp: Date?
            var event = TaskEvent(kind: .received, uuid: "", taskName: "", queue: "", attempt: 1, workerID: "")
            try object { reader, key in
                switch key {
                case "kind": kind = try reader.optional { try $0.string() }
                case "uuid": uuid = try reader.optional { try $0.string() }
                case "task_name": taskName = try reader.optional { try $0.string() }
                case "queue": queue = try reader.optional { try $0.string() }
                case "attempt": attempt = try reader.optional { try $0.int() }
                case "worker_id": workerID = try reader.optional { try $0.string() }
                case "timestamp": timestamp = try reader.optional { try $0.date() }
                case "created_at": event.createdAt = try reader.optional { try $0.date() }
                case "priority": event.priority = try reader.optional { try $0.int() }
                case "duration": event.duration = try reader.optional { try $0.duration() }
                case "trace_id": event.traceID = try reader.optional { try $0.string() }
                case "arguments": event.arguments = try reader.optional { try $0.arguments() }
                case "result": event.result = try reader.optional { try $0.json() }
                case "failure": event.failure = try reader.optional { try $0.failure() }
                case "retry_delay": event.retryDelay = try reader.optional { try $0.duration() }
                case "dead_letter_queue": event.deadLetterQueue = try reader.optional { try $0.string() }
                default: try reader.skip()
                }
            }
            guard let kind, let uuid, let taskName, let queue, let attempt, let workerID, let timestamp else {
                throw Failure("an event lacks one of kind, uuid, task_name, queue, attempt, worker_id, timestamp")
            }
            event.kind = TaskEvent.Kind(rawValue: kind)
            event.uuid = uuid
            event.taskName = taskName
            event.queue = queue
            event.attempt = attempt
            event.workerID = workerID
            event.timestamp = timestamp
            return event
        }

        mutating func failure() throws -> TaskEvent.Failure {
            var type: String?
            var message: String?
            var traceback: String?
            try object { reader, key in
                switch key {
                case "type": type = try reader.optional { try $0.string() }
                case "message": message = try reader.optional { try $0.string() }
                case "traceback": traceback = try reader.optional { try $0.string() }
                default: try reader.skip()
                }
            }
            guard let type, let message, let traceback else {
                throw Failure("a failure lacks one of type, message, traceback")
            }
            return TaskEvent.Failure(type: type, message: message, traceback: traceback)
        }

        mutating func arguments() throws -> RecordedArguments {
            var arguments = RecordedArguments(args: [], kwargs: [:])
            try object { reader, key in
                switch key {
                case "args": arguments.args = try reader.optional { try $0.json() }?.arrayValue ?? []
                case "kwargs": arguments.kwargs = try reader.optional { try $0.json() }?.objectValue ?? [:]
                case "truncated": arguments.truncated = try reader.optional { try $0.bool() } ?? false
                case "text": arguments.text = try reader.optional { try $0.string() }
                case "omitted": arguments.omitted = try reader.optional { try $0.bool() } ?? false
                default: try reader.skip()
                }
            }
            return arguments
        }

        // MARK: Structure

        /// After the value: nothing but white space.
        mutating func end() throws {
            skipSpace()
            guard index == bytes.count else { throw failure("text after the JSON value") }
        }

        private func failure(_ what: String) -> Failure {
            Failure("not a task record's JSON at byte \(index): \(what)")
        }

        private mutating func skipSpace() {
            while index < bytes.count {
                switch bytes[index] {
                case 0x20, 0x09, 0x0A, 0x0D: index += 1
                default: return
                }
            }
        }

        /// The next byte after white space, not consumed.
        private mutating func peek() throws -> UInt8 {
            skipSpace()
            guard index < bytes.count else { throw failure("unexpected end") }
            return bytes[index]
        }

        private mutating func expect(_ byte: UInt8, _ what: String) throws {
            guard try peek() == byte else { throw failure("expected \(what)") }
            index += 1
        }

        /// nil for `null`, else `read`'s value.
        mutating func optional<T>(_ read: (inout Reader) throws -> T) throws -> T? {
            if try peek() == UInt8(ascii: "n") {
                try literal("null")
                return nil
            }
            return try read(&self)
        }

        /// Reads an object, calling `member` with each key; `member` reads
        /// the value.
        private mutating func object(_ member: (inout Reader, String) throws -> Void) throws {
            try expect(UInt8(ascii: "{"), "an object")
            try enter()
            if try peek() == UInt8(ascii: "}") {
                index += 1
                depth -= 1
                return
            }
            while true {
                guard try peek() == UInt8(ascii: "\"") else { throw failure("expected a key") }
                let key = try string()
                try expect(UInt8(ascii: ":"), "':'")
                try member(&self, key)
                switch try peek() {
                case UInt8(ascii: ","): index += 1
                case UInt8(ascii: "}"):
                    index += 1
                    depth -= 1
                    return
                default: throw failure("expected ',' or '}'")
                }
            }
        }

        /// Reads an array, calling `element` for each element.
        private mutating func array(_ element: (inout Reader) throws -> Void) throws {
            try expect(UInt8(ascii: "["), "an array")
            try enter()
            if try peek() == UInt8(ascii: "]") {
                index += 1
                depth -= 1
                return
            }
            while true {
                try element(&self)
                switch try peek() {
                case UInt8(ascii: ","): index += 1
                case UInt8(ascii: "]"):
                    index += 1
                    depth -= 1
                    return
                default: throw failure("expected ',' or ']'")
                }
            }
        }

        private mutating func enter() throws {
            depth += 1
            guard depth <= Self.maxDepth else { throw failure("nested too deeply") }
        }

        private mutating func literal(_ word: StaticString) throws {
            let count = word.utf8CodeUnitCount
            guard index + count <= bytes.count else { throw failure("unexpected end") }
            for offset in 0..<count where bytes[index + offset] != word.utf8Start[offset] {
                throw failure("unexpected character")
            }
            index += count
        }

        private mutating func skip() throws { _ = try json() }

        // MARK: Values

        /// Any JSON value: integers that fit in `Int64` as `.int`, other
        /// numbers as `.double` (as `JSONValue`'s `Codable` reads them).
        mutating func json() throws -> JSONValue {
            switch try peek() {
            case UInt8(ascii: "{"):
                var members: [String: JSONValue] = [:]
                try object { reader, key in members[key] = try reader.json() }
                return .object(members)
            case UInt8(ascii: "["):
                var elements: [JSONValue] = []
                try array { elements.append(try $0.json()) }
                return .array(elements)
            case UInt8(ascii: "\""): return .string(try string())
            case UInt8(ascii: "t"), UInt8(ascii: "f"): return .bool(try bool())
            case UInt8(ascii: "n"):
                try literal("null")
                return .null
            default:
                let number = try self.number()
                if number.isInteger, let value = number.int64 { return .int(value) }
                return .double(try number.double())
            }
        }

        mutating func bool() throws -> Bool {
            switch try peek() {
            case UInt8(ascii: "t"):
                try literal("true")
                return true
            case UInt8(ascii: "f"):
                try literal("false")
                return false
            default: throw failure("expected true or false")
            }
        }

        mutating func int() throws -> Int {
            let number = try self.number()
            if number.isInteger, let value = number.int64, let int = Int(exactly: value) { return int }
            guard let value = Int(exactly: try number.double()) else { throw failure("expected an integer") }
            return value
        }

        /// Unix seconds as a `Date`. This writer's exact decimals (more
        /// digits than a `Double` has) are read exactly (see
        /// ``RecordJSON``); other numbers, such as `JSONEncoder`'s, as
        /// `Codable` reads them: `Date(timeIntervalSince1970:)` of their
        /// `Double`.
        mutating func date() throws -> Date {
            let number = try self.number()
            if let since2001 = number.exactSecondsSince2001 { return Date(timeIntervalSinceReferenceDate: since2001) }
            let seconds = try number.double()
            guard seconds.isFinite else { throw failure("not a time") }
            return Date(timeIntervalSince1970: seconds)
        }

        /// Seconds as a `Duration`: plain decimals exactly, to the
        /// attosecond; other numbers through their `Double`.
        mutating func duration() throws -> Duration {
            let number = try self.number()
            if let duration = number.exactDuration { return duration }
            let seconds = try number.double()
            guard seconds.isFinite else { throw failure("not a duration") }
            return Duration.seconds(seconds)
        }

        /// A number's text, checked against JSON's grammar.
        private mutating func number() throws -> Number {
            guard try peek() == UInt8(ascii: "-") || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[index])
            else { throw failure("expected a number") }
            let start = index
            var number = Number(bytes: UnsafeBufferPointer(rebasing: bytes[start..<start]))
            if bytes[index] == UInt8(ascii: "-") {
                number.negative = true
                index += 1
            }
            let wholeStart = index
            skipDigits()
            guard index > wholeStart else { throw failure("bad number") }
            number.whole = wholeStart..<index
            if index < bytes.count, bytes[index] == UInt8(ascii: ".") {
                index += 1
                let fractionStart = index
                skipDigits()
                guard index > fractionStart else { throw failure("bad number") }
                number.fraction = fractionStart..<index
            }
            if index < bytes.count, bytes[index] == UInt8(ascii: "e") || bytes[index] == UInt8(ascii: "E") {
                index += 1
                if index < bytes.count, bytes[index] == UInt8(ascii: "+") || bytes[index] == UInt8(ascii: "-") {
                    index += 1
                }
                let exponentStart = index
                skipDigits()
                guard index > exponentStart else { throw failure("bad number") }
                number.hasExponent = true
            }
            number.bytes = UnsafeBufferPointer(rebasing: bytes[start..<index])
            number.whole = (number.whole.lowerBound - start)..<(number.whole.upperBound - start)
            if let fraction = number.fraction {
                number.fraction = (fraction.lowerBound - start)..<(fraction.upperBound - start)
            }
            return number
        }

        private mutating func skipDigits() {
            while index < bytes.count, bytes[index] &- UInt8(ascii: "0") < 10 { index += 1 }
        }

        mutating func string() throws -> String {
            guard try peek() == UInt8(ascii: "\"") else { throw failure("expected a string") }
            index += 1
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
            var utf8 = Array(UnsafeBufferPointer(rebasing: bytes[start..<index]))
            while index < bytes.count {
                let byte = bytes[index]
                index += 1
                switch byte {
                case UInt8(ascii: "\""):
                    return String(decoding: utf8, as: UTF8.self)
                case UInt8(ascii: "\\"):
                    guard index < bytes.count else { throw failure("unexpected end") }
                    let escape = bytes[index]
                    index += 1
                    switch escape {
                    case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): utf8.append(escape)
                    case UInt8(ascii: "b"): utf8.append(0x08)
                    case UInt8(ascii: "f"): utf8.append(0x0C)
                    case UInt8(ascii: "n"): utf8.append(0x0A)
                    case UInt8(ascii: "r"): utf8.append(0x0D)
                    case UInt8(ascii: "t"): utf8.append(0x09)
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
                        // A lone surrogate becomes U+FFFD.
                        let scalar = Unicode.Scalar(code) ?? "\u{FFFD}"
                        utf8.append(contentsOf: String(Character(scalar)).utf8)
                    default:
                        throw failure("bad escape")
                    }
                default:
                    if byte < 0x20 { throw failure("control character in a string") }
                    utf8.append(byte)
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

    /// A JSON number's text (valid), and where its parts are.
    struct Number {
        var bytes: UnsafeBufferPointer<UInt8>
        var negative = false
        /// The digits before the point (indices into `bytes`).
        var whole: Range<Int> = 0..<0
        /// The digits after the point, if any.
        var fraction: Range<Int>?
        var hasExponent = false

        /// No point, no exponent.
        var isInteger: Bool { fraction == nil && !hasExponent }

        /// An integer's value, nil when it does not fit (or is not one).
        var int64: Int64? {
            guard isInteger, let magnitude = Self.digits(bytes, whole) else { return nil }
            if negative {
                return magnitude <= UInt64(Int64.max) + 1 ? Int64(truncatingIfNeeded: 0 &- magnitude) : nil
            }
            return Int64(exactly: magnitude)
        }

        /// The nearest `Double`.
        func double() throws -> Double {
            guard let value = Double(String(decoding: bytes, as: UTF8.self)) else {
                throw Failure("bad number \(String(decoding: bytes, as: UTF8.self))")
            }
            return value
        }

        /// For this writer's dates: a plain decimal with more significant
        /// digits than any `Double`'s shortest form (17) and a fraction
        /// that is exactly a binary one, as seconds since 2001. Nil for
        /// other numbers (`Codable`'s, which are read as it reads them).
        var exactSecondsSince2001: Double? {
            guard !negative, !hasExponent, let fraction, let wholeValue = Self.digits(bytes, whole),
                wholeValue < 1_000_000_000_000_000
            else { return nil }
            var significant = 0
            var leading = true
            for index in whole.lowerBound..<whole.upperBound where !(leading && bytes[index] == UInt8(ascii: "0")) {
                leading = false
                significant += 1
            }
            for index in fraction where !(leading && bytes[index] == UInt8(ascii: "0")) {
                leading = false
                significant += 1
            }
            guard significant > 17 else { return nil }
            // The fraction digits D over 10^k is a binary fraction m / 2^k
            // when 5^k divides D: m = D / 5^k (k ≤ 38 digits fit in 128 bits).
            let count = fraction.count
            guard count <= 38 else { return nil }
            var digits: UInt128 = 0
            var power: UInt128 = 1
            for index in fraction {
                digits = digits * 10 + UInt128(bytes[index] - UInt8(ascii: "0"))
                power *= 5
            }
            let (m, remainder) = digits.quotientAndRemainder(dividingBy: power)
            guard remainder == 0 else { return nil }
            let fractionValue = Double(sign: .plus, exponent: -count, significand: Double(m))
            return Double(Int64(wholeValue) - RecordJSON.referenceOffset) + fractionValue
        }

        /// A plain decimal with at most 18 digits after the point, to the
        /// attosecond.
        var exactDuration: Duration? {
            guard !negative, !hasExponent, let seconds = Self.digits(bytes, whole), let secondsValue = Int64(exactly: seconds)
            else { return nil }
            var attoseconds: Int64 = 0
            if let fraction {
                guard fraction.count <= 18, let value = Self.digits(bytes, fraction) else { return nil }
                attoseconds = Int64(value)
                for _ in fraction.count..<18 { attoseconds *= 10 }
            }
            return Duration(secondsComponent: secondsValue, attosecondsComponent: attoseconds)
        }

        /// The value of a run of digits, nil past `UInt64`.
        static func digits(_ bytes: UnsafeBufferPointer<UInt8>, _ range: Range<Int>) -> UInt64? {
            var value: UInt64 = 0
            for index in range {
                let (times10, overflow1) = value.multipliedReportingOverflow(by: 10)
                let (sum, overflow2) = times10.addingReportingOverflow(UInt64(bytes[index] - UInt8(ascii: "0")))
                guard !overflow1, !overflow2 else { return nil }
                value = sum
            }
            return value
        }
    }
}
