import Foundation
import QTasks
import Testing

/// The worker reads task bodies with its own JSON parser and a `Decoder`
/// over its values, and falls back to `JSONDecoder` for whatever that path
/// is not sure of. Either way a body must give the handler the same values,
/// and a bad body the same error, as `JSONDecoder` alone did.
@Suite struct FastEnvelopeDecodingTests {
    struct Shape: Codable, Sendable, Equatable {
        var name: String
        var sides: [Int]
        var scale: Double?
        var tags: [String: Bool]
    }

    enum Mode: String, Codable, Sendable { case fast, slow }

    private func app() throws -> TaskApp {
        let app = TaskApp()
        try app.register("typed", parameters: ["count", "label", "ratios", "shape", "mode", "extra"]) {
            (count: Int, label: String, ratios: [Double], shape: Shape, mode: Mode, extra: Int?) -> JSONValue in
            [
                "count": .int(Int64(count)), "label": .string(label), "ratios": .array(ratios.map(JSONValue.double)),
                "shape": .string("\(shape.name):\(shape.sides):\(shape.scale.map { "\($0)" } ?? "nil"):\(shape.tags.keys.sorted())"),
                "mode": .string(mode.rawValue), "extra": extra.map { .int(Int64($0)) } ?? .null,
            ]
        }
        try app.register("small", parameters: ["value"]) { (value: Int8) -> Int in Int(value) }
        try app.register("none") { () -> Int in 7 }
        return app
    }

    @Test func typedArgumentsArriveAsJSONDecoderGaveThem() async throws {
        let body = #"{"uuid": "u-1", "task_name": "typed", "priority": 2, "created_at": 12.5, "args": [3, "tri", [0.5, 2, -1e-3]], "kwargs": {"shape": {"name": "t", "sides": [1, 2, 3], "tags": {"b": true, "a": false}}, "mode": "fast"}}"#
        let outcome = await execute(try app(), body)
        guard case .completed(let result) = outcome else {
            Issue.record("expected success: \(outcome.result)")
            return
        }
        let expected: JSONValue = [
            "count": 3, "label": "tri", "ratios": [0.5, 2.0, -0.001], "shape": .string("t:[1, 2, 3]:nil:[\"a\", \"b\"]"),
            "mode": "fast", "extra": nil,
        ]
        #expect(result.returning == expected)
        #expect(result.uuid == "u-1")
        #expect(result.createdAt == 12.5)
    }

    @Test func escapesAndUnicodeReadTheSame() async throws {
        // A \u escape goes to JSONDecoder; a plain UTF-8 é and a \n escape
        // are read by the fast path: the same label either way.
        for label in [#"caf\u00e9\n"#, "café\\n"] {
            let body = #"{"task_name": "typed", "args": [1, ""# + label + #"", [], {"name": "s", "sides": [], "tags": {}}, "slow"]}"#
            let outcome = await execute(try app(), body)
            guard case .completed(let result) = outcome else {
                Issue.record("expected success for \(label): \(outcome.result)")
                continue
            }
            #expect(result.returning?.objectValue?["label"] == .string("café\n"))
        }
    }

    @Test func whatTheFastPathRefusesIsDecidedByJSONDecoder() async throws {
        // An integral number written with a fraction, an integer out of the
        // parameter's range, a number too large for a Double: each
        // outcome is JSONDecoder's own.
        let cases: [(body: String, probe: String)] = [
            (#"{"task_name": "small", "args": [5.0]}"#, "[5.0]"),
            (#"{"task_name": "small", "args": [300]}"#, "[300]"),
            (#"{"task_name": "small", "args": [1e400]}"#, "[1e400]"),
        ]
        for (body, probe) in cases {
            let direct = try? JSONDecoder().decode([Int8].self, from: Data(probe.utf8))
            let outcome = await execute(try app(), body)
            if let direct {
                #expect(outcome.result.returning == .int(Int64(direct[0])), "body \(body)")
            } else {
                #expect(outcome.isRejected, "body \(body): \(outcome.result)")
                #expect(outcome.result.traceback?.hasPrefix("TaskInputError: ") == true)
            }
        }
    }

    @Test func errorsAreWordedAsBefore() async throws {
        let app = try app()
        let wrongType = await execute(app, #"{"task_name": "small", "args": ["x"]}"#)
        #expect(wrongType.isRejected)
        #expect(wrongType.result.traceback == "TaskInputError: small() argument 1 ('value'): expected Int8, found string \"x\"")
        let extra = await execute(app, #"{"task_name": "none", "args": [1]}"#)
        #expect(extra.result.traceback == "TaskInputError: none() takes 0 arguments but 1 was given")
        let unknown = await execute(app, #"{"task_name": "nope"}"#)
        #expect(unknown.result.traceback == "TaskInputError: unknown task 'nope'")
        let badPriority = await execute(app, #"{"task_name": "none", "priority": 1.5}"#)
        #expect(badPriority.result.traceback == "TaskInputError: priority must be an integer, found 1.5")
        let integralPriority = await execute(app, #"{"task_name": "none", "priority": 3.0}"#)
        #expect(integralPriority.isCompleted)
    }

    @Test func aBodyWithoutArgumentsRuns() async throws {
        let outcome = await execute(try app(), #"{"task_name": "none", "args": [], "kwargs": {}}"#)
        #expect(outcome.result.returning == 7)
    }
}
