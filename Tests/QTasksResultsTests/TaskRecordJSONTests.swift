import Foundation
import QTasks
import Testing

/// The hand-written JSON of records and events (what the stores keep and
/// the events exchange carries) is the JSON form of their `Codable`, both
/// ways; its parser reads JSON as `JSONDecoder` does.
@Suite("Record and event JSON")
struct TaskRecordJSONTests {
    /// Records of every shape the reducer makes.
    static func records() -> [TaskRecord] {
        var records: [TaskRecord] = []
        func build(_ events: [TaskEvent]) -> TaskRecord {
            var record = TaskRecord(first: events[0])
            for event in events.dropFirst() { record.apply(event) }
            return record
        }
        // Times with sub-millisecond parts, as Date() gives them.
        let start = Date(timeIntervalSinceNow: -0.123_456_789)
        var success = EventScript(taskName: "billing.add", queue: "orders", start: start)
        var received = success.received(args: [2, "thr\"ee", ["x": 1.5, "y": [true, .null]]], kwargs: ["note": "héllo\n\t✓ 😀"], priority: 7)
        received.timestamp = received.timestamp.addingTimeInterval(0.000_123_4)
        var started = success.next(.started)
        started.traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
        records.append(build([received, started, success.succeeded(["sum": 5, "ratio": 0.1, "big": .int(Int64.max), "neg": -3])]))

        var nothing = EventScript()
        records.append(build([nothing.received(), nothing.next(.started), nothing.succeeded(.null)]))

        var failing = EventScript(taskName: "charge")
        var retried = failing.failure(.retried, attempt: 1, message: "network \\ down \u{1}")
        retried.retryDelay = .milliseconds(1500)
        var deadLettered = failing.failure(.deadLettered, attempt: 2, message: "declined")
        deadLettered.deadLetterQueue = "default.dlq"
        records.append(build([
            failing.received(), failing.next(.started), retried, failing.received(attempt: 2),
            failing.next(.started, attempt: 2), failing.failure(.failed, attempt: 2, message: "declined"), deadLettered,
        ]))

        var secret = EventScript()
        var hidden = secret.received()
        hidden.arguments = .omitted
        records.append(build([hidden, secret.next(.started), secret.next(.cancelled)]))

        var large = EventScript()
        var big = large.received()
        big.arguments = .bounded(args: [.string(String(repeating: "é", count: 100))], kwargs: [:], maxBytes: 40)
        records.append(build([big, large.next(.requeued)]))

        var bare = EventScript(uuid: "job-1")
        records.append(build([bare.next(.started)]))
        return records
    }

    /// The JSON form through `JSONEncoder` with sorted keys: equal for
    /// records equal up to the JSON form's precision.
    func canonical(_ record: TaskRecord) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return String(decoding: try encoder.encode(record), as: UTF8.self)
    }

    @Test func ourTextReadsBackAsTheSameRecord() throws {
        for record in Self.records() {
            let text = TaskRecordJSON.encode(record)
            let back = try TaskRecordJSON.decode(text.utf8)
            #expect(try canonical(back) == canonical(record), "\(text)")
            // Times within a microsecond (Unix seconds against a Date's
            // seconds since 2001).
            #expect(abs(back.updatedAt.timeIntervalSince(record.updatedAt)) < 1e-6)
            #expect(zip(back.events, record.events).allSatisfy { abs($0.timestamp.timeIntervalSince($1.timestamp)) < 1e-6 })
        }
    }

    @Test func eventsReadBackAndCodableReadsThem() throws {
        for event in Self.records().flatMap(\.events) {
            let bytes = TaskRecordJSON.encode(event)
            let back = try TaskRecordJSON.decodeEvent(bytes)
            let decoded = try JSONDecoder().decode(TaskEvent.self, from: Data(bytes))
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            let expected = try encoder.encode(event)
            #expect(try encoder.encode(back) == expected)
            #expect(try encoder.encode(decoded) == expected)
        }
    }

    @Test func codableReadsOurTextAsTheSameRecord() throws {
        for record in Self.records() {
            let text = TaskRecordJSON.encode(record)
            let decoded = try JSONDecoder().decode(TaskRecord.self, from: Data(text.utf8))
            var expected = record
            // Codable reads a `null` result as none.
            if expected.result == .null { expected.result = nil }
            #expect(try canonical(decoded) == canonical(expected), "\(text)")
        }
    }

    @Test func weReadCodablesTextAsTheSameRecord() throws {
        for record in Self.records() {
            let data = try JSONEncoder().encode(record)
            let decoded = try TaskRecordJSON.decode(Array(data))
            #expect(try canonical(decoded) == canonical(record))
            #expect(abs(decoded.updatedAt.timeIntervalSince(record.updatedAt)) < 1e-6)
        }
    }

    @Test func theParserReadsJSONAsJSONDecoderDoes() throws {
        let texts = [
            #"{"a":[1,-2,3.5,1e3,-0.25E-2,9223372036854775807,9223372036854775808],"b":{"c":null,"d":true,"e":false}}"#,
            #"  [ "\u00e9\ud83d\ude00\"\\\/\b\f\n\r\t" , "" , {} , [] ]  "#,
            #""plain""#, "0", "-0", "1.0",
        ]
        for text in texts {
            let ours = try JSONParser.parse(text.utf8)
            let theirs = try JSONDecoder().decode(JSONValue.self, from: Data(text.utf8))
            #expect(ours == theirs, "\(text)")
        }
        for bad in ["", "{", "[1,]", "{\"a\" 1}", "tru", "\"\\ud800\"", "\"a\nb\"", "1 2", "01x", "{\"a\":1,}", "-"] {
            #expect(throws: JSONParser.Failure.self, "\(bad)") { _ = try JSONParser.parse(bad.utf8) }
        }
        let deep = String(repeating: "[", count: 600) + String(repeating: "]", count: 600)
        #expect(throws: JSONParser.Failure.self) { _ = try JSONParser.parse(deep.utf8) }
    }

    @Test func aNonFiniteResultIsWrittenAsNull() throws {
        var script = EventScript()
        var record = TaskRecord(first: script.received())
        record.apply(script.succeeded(.double(.infinity)))
        let back = try TaskRecordJSON.decode(TaskRecordJSON.encode(record).utf8)
        #expect(back.result == .null)
    }
}
