import Foundation
import Synchronization
import Testing

@testable import QTasks

/// The worker reads a body on two paths: its parser's values, read without
/// any `Decoder` for the envelope and without Codable containers for `args`
/// and `kwargs` (``ArgumentSource/values(_:)``), and `JSONDecoder` with the
/// container-based ``ArgumentReader`` for whatever the first is not sure
/// of and for every error. Every body must read the same on both: the same
/// fields, the same values handed to the handler, the same error text.
@Suite struct ArgumentReaderPathsTests {
    struct Point: Codable, Sendable, Equatable {
        var x: Int
        var y: Int
    }

    enum Color: String, Codable, Sendable { case red, green }

    static let none = TaskDefinition("none")
    static let pair = TaskDefinition("pair", parameters: ["count", "label"], arguments: Int.self, String.self)

    private static func app() throws -> TaskApp {
        let app = TaskApp()
        try app.register("typed", parameters: ["count", "label", "point", "color", "extra"]) {
            (count: Int, label: String, point: Point, color: Color, extra: Double?) -> JSONValue in
            [
                "count": .int(Int64(count)), "label": .string(label), "point": [.int(Int64(point.x)), .int(Int64(point.y))],
                "color": .string(color.rawValue), "extra": extra.map(JSONValue.double) ?? .null,
            ]
        }
        try app.register("positional") { (a: Int, b: [String]) -> String in "\(a):\(b.joined(separator: ","))" }
        try app.register("secret", parameters: ["token"], options: TaskOptions(recordsArguments: false)) { (token: Int) -> Int in token }
        try app.register("any") { (context: TaskContext) in JSONValue.array(context.arguments.args) }
        try app.register(Self.none) {}
        try app.register(Self.pair) { _, _ in }
        return app
    }

    /// Good bodies and bad ones of every kind the reader words.
    static let bodies: [String] = [
        // Good.
        #"{"uuid": "u-1", "task_name": "typed", "priority": 3, "created_at": 17.25, "args": [2, "x"], "kwargs": {"point": {"x": 1, "y": 2}, "color": "red"}}"#,
        #"{"task_name": "typed", "args": [2, "x", {"x": -1, "y": 0}, "green", 0.5]}"#,
        #"{"task_name": "typed", "kwargs": {"count": 1, "label": "", "point": {"x": 1, "y": 2}, "color": "red", "extra": null}}"#,
        #"{"task_name": "positional", "args": [1, ["a", "b"]], "kwargs": {}}"#,
        #"{"task_name": "any", "args": [1, {"k": [true, null]}], "kwargs": {"z": "é"}}"#,
        #"{"task_name": "any"}"#,
        #"{"task_name": "none", "args": [], "kwargs": {}}"#,
        #"{"task_name": "none"}"#,
        #"{"task_name": "none", "args": null, "kwargs": null, "uuid": null, "priority": null, "created_at": null}"#,
        #"{"task_name": "none", "priority": 2.0, "created_at": 5}"#,
        #"{"task_name": "pair", "args": [1], "kwargs": {"label": "l"}}"#,
        #"{"task_name": "secret", "args": [9]}"#,
        // Arity: before types, worded like Python's.
        #"{"task_name": "none", "args": [1]}"#,
        #"{"task_name": "none", "kwargs": {"x": 1}}"#,
        #"{"task_name": "pair", "args": [1, "a", 3]}"#,
        #"{"task_name": "pair", "args": [1], "kwargs": {"count": 2, "label": "l"}}"#,
        #"{"task_name": "pair", "args": ["wrong"], "kwargs": {"zz": 1, "aa": 2}}"#,
        #"{"task_name": "positional", "args": [1], "kwargs": {"b": ["x"]}}"#,
        #"{"task_name": "pair", "args": [1]}"#,
        #"{"task_name": "typed", "args": [1, "x", {"x": 1, "y": 2}]}"#,
        // Types.
        #"{"task_name": "pair", "args": ["1", "l"]}"#,
        #"{"task_name": "pair", "args": [1.5, "l"]}"#,
        #"{"task_name": "pair", "args": [null, "l"]}"#,
        #"{"task_name": "typed", "args": [1, "x", {"x": 1}, "red"]}"#,
        #"{"task_name": "typed", "args": [1, "x", {"x": 1, "y": "2"}, "red"]}"#,
        #"{"task_name": "typed", "args": [1, "x", {"x": 1, "y": 2}, "blue"]}"#,
        #"{"task_name": "typed", "args": [1, "x", {"x": 1, "y": 2}, "red", "no"]}"#,
        #"{"task_name": "secret", "args": ["hunter2"]}"#,
        #"{"task_name": "secret", "kwargs": {"token": 1.5}}"#,
        // Fields.
        #"{"task_name": "pair", "args": {"count": 1}}"#,
        #"{"task_name": "pair", "kwargs": [1, "l"]}"#,
        #"{"task_name": "any", "args": "x"}"#,
        #"{"task_name": "any", "kwargs": 3}"#,
        #"{"task_name": "none", "uuid": 5}"#,
        #"{"task_name": "none", "priority": 1.5}"#,
        #"{"task_name": "none", "priority": "high"}"#,
        #"{"task_name": "none", "created_at": "today"}"#,
        #"{"task_name": 3}"#,
        #"{"uuid": "u-2"}"#,
        #"{"task_name": "nope", "uuid": "u-3"}"#,
        #"[1, 2]"#,
        #"{"task_name": "none", "args": [1,]}"#,
    ]

    private struct Reading: Equatable {
        var bodyUUID: String?
        var taskName: String
        var priority: Int
        var bodyCreatedAt: Double?
        var workflow: WorkflowContext?
        var args: [JSONValue]
        var kwargs: [String: JSONValue]
        var returning: JSONValue?
        var runError: String?
    }

    private func read(_ body: String, catalog: TaskCatalog?, fastPath: Bool) async -> Result<Reading, TaskInputError> {
        let bytes = Array(body.utf8)
        let envelope: TaskEnvelope
        do {
            envelope = try TaskEnvelope.decode(bytes, catalog: catalog, messageID: "m-1", fastPath: fastPath)
        } catch {
            return .failure(error)
        }
        let arguments = envelope.call.arguments ?? TaskArguments(body: bytes)
        var reading = Reading(
            bodyUUID: envelope.bodyUUID, taskName: envelope.taskName, priority: envelope.priority, bodyCreatedAt: envelope.bodyCreatedAt,
            workflow: envelope.workflow, args: arguments.args, kwargs: arguments.kwargs)
        if catalog != nil {
            let context = TaskContext(uuid: envelope.uuid, taskName: envelope.taskName, arguments: arguments)
            do {
                reading.returning = try await envelope.call.run(context)
            } catch {
                reading.runError = "\(error)"
            }
        }
        return .success(reading)
    }

    @Test(arguments: bodies)
    func bothPathsReadABodyAlike(_ body: String) async throws {
        let catalog = try Self.app().catalog()
        for catalog in [catalog, nil] {
            let fast = await read(body, catalog: catalog, fastPath: true)
            let slow = await read(body, catalog: catalog, fastPath: false)
            #expect(fast == slow, "catalog: \(catalog != nil)")
        }
    }

    /// What the strict parse leaves to `JSONDecoder`: invalid UTF-8 (in a
    /// string, a key, or outside strings) and `\u` escapes; plain non-ASCII
    /// UTF-8 stays on the fast path. Either way, both paths agree.
    @Test func invalidUTF8AndUnicodeEscapesReadAlike() async throws {
        let catalog = try Self.app().catalog()
        let bodies: [[UInt8]] = [
            Array(#"{"task_name": "pair", "args": [1, "caf"#.utf8) + [0xC3] + Array(#""]}"#.utf8),
            Array(#"{"task_name": "pair", "args": [1, "l"], "k"#.utf8) + [0xFF] + Array(#"": 1}"#.utf8),
            Array(#"{"task_name": "pair", "args": [1, "l"]} "#.utf8) + [0xE2, 0x82],
            Array(#"{"task_name": "pair", "args": [1, "caf\u00e9"]}"#.utf8),
            Array(#"{"task_name": "pair", "args": [1, "\ud83d\ude00"]}"#.utf8),
            Array(#"{"task_name": "pair", "args": [1, "\\u00e9"]}"#.utf8),
            Array(#"{"task_name": "pair", "args": [1, "café ☕ 😀"]}"#.utf8),
        ]
        for bytes in bodies {
            let text = String(decoding: bytes, as: UTF8.self)
            for catalog in [catalog, nil] {
                let fast = Result { () throws(TaskInputError) in try TaskEnvelope.decode(bytes, catalog: catalog, messageID: "m") }
                let slow = Result { () throws(TaskInputError) in
                    try TaskEnvelope.decode(bytes, catalog: catalog, messageID: "m", fastPath: false)
                }
                switch (fast, slow) {
                case (.failure(let a), .failure(let b)):
                    #expect(a == b, "\(text)")
                case (.success(let a), .success(let b)):
                    let fastArguments = a.call.arguments ?? TaskArguments(body: bytes)
                    let slowArguments = b.call.arguments ?? TaskArguments(body: bytes)
                    #expect(fastArguments.args == slowArguments.args, "\(text)")
                    #expect(a.taskName == b.taskName, "\(text)")
                default:
                    Issue.record("the paths disagree on \(text)")
                }
            }
        }
    }

    @Test func theStrictParseRefusesWhatItWouldRepair() throws {
        func members(_ bytes: [UInt8], strict: Bool) -> [String: JSONValue]? {
            var found: [String: JSONValue] = [:]
            guard (try? JSONParser.members(of: bytes, strict: strict) { found[$0] = $1 }) == true else { return nil }
            return found
        }
        let invalid = Array(#"{"a": "x"#.utf8) + [0xC3] + Array(#""}"#.utf8)
        #expect(members(invalid, strict: true) == nil)
        #expect(members(invalid, strict: false) == ["a": .string("x\u{FFFD}")])
        let escaped = Array(#"{"a": "\u00e9"}"#.utf8)
        #expect(members(escaped, strict: true) == nil)
        #expect(members(escaped, strict: false) == ["a": "é"])
        #expect(members(Array(#"{"a": "é\n", "b": [1]}"#.utf8), strict: true) == ["a": "é\n", "b": [1]])
        #expect(members(Array("[1]".utf8), strict: true) == nil)
    }

    @Test func errorsAreWordedAsPythonWordsThem() async throws {
        let catalog = try Self.app().catalog()
        func message(_ body: String) async -> String? {
            if case .failure(let error) = await read(body, catalog: catalog, fastPath: true) { return error.message }
            return nil
        }
        let cases: [(body: String, message: String)] = [
            (#"{"task_name": "none", "args": [1]}"#, "none() takes 0 arguments but 1 was given"),
            (#"{"task_name": "none", "kwargs": {"x": 1}}"#, "none() got an unexpected keyword argument 'x'"),
            (#"{"task_name": "pair", "args": [1, "a", 3]}"#, "pair() takes 2 arguments but 3 were given"),
            (#"{"task_name": "pair", "args": [1], "kwargs": {"count": 2, "label": "l"}}"#, "pair() got multiple values for argument 'count'"),
            // Arity before types, and the keys in sorted order.
            (#"{"task_name": "pair", "args": ["wrong"], "kwargs": {"zz": 1, "aa": 2}}"#, "pair() got an unexpected keyword argument 'aa'"),
            (#"{"task_name": "pair", "args": [1]}"#, "pair() missing argument 'label' (position 2) of type String"),
            (#"{"task_name": "pair", "args": ["1", "l"]}"#, #"pair() argument 1 ('count'): expected Int, found string "1""#),
            (#"{"task_name": "pair", "args": {"count": 1}}"#, "args must be a JSON array, found object"),
            // Secret arguments: the kind, never the value.
            (#"{"task_name": "secret", "args": ["hunter2"]}"#, "secret() argument 1 ('token'): expected Int, found string"),
        ]
        for (body, expected) in cases {
            let found = await message(body)
            #expect(found == expected, "\(body)")
        }
    }

    @Test func typicalBodiesTakeTheFastPath() throws {
        // Observable through the arguments: the fast path hands the
        // handler's context the values it parsed (with the body's size),
        // where JSONDecoder leaves a typed task's to be parsed on demand.
        let catalog = try Self.app().catalog()
        for body in [
            #"{"uuid": "u", "task_name": "none", "args": [], "kwargs": {}}"#,
            #"{"uuid": "u", "task_name": "pair", "args": [1, "l"], "kwargs": {}}"#,
            #"{"uuid": "u", "task_name": "typed", "args": [1, "l", {"x": 1, "y": 2}], "kwargs": {"color": "red"}}"#,
        ] {
            let bytes = Array(body.utf8)
            let fast = try TaskEnvelope.decode(bytes, catalog: catalog, messageID: nil)
            #expect(fast.call.arguments?.bodySize == bytes.count, "\(body)")
            let slow = try TaskEnvelope.decode(bytes, catalog: catalog, messageID: nil, fastPath: false)
            #expect(slow.call.arguments == nil, "\(body)")
        }
    }

    @Test func aTaskWithoutParametersRunsItsHandlerOnEveryCall() async throws {
        // Its binding is made once, at registration: the handler still
        // runs once per call.
        let app = TaskApp()
        final class Calls: Sendable { let count = Mutex(0) }
        let calls = Calls()
        try app.register(Self.none) { calls.count.withLock { $0 += 1 } }
        for _ in 0..<3 {
            let outcome = await execute(app, #"{"task_name": "none", "args": [], "kwargs": {}}"#)
            #expect(outcome.isCompleted)
        }
        #expect(calls.count.withLock { $0 } == 3)
    }
}
