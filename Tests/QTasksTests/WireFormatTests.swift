import Foundation
import QTasks
import Testing

@Suite struct WireFormatTests {
    @Test func decodesEveryField() throws {
        let body = #"{"uuid":"u-1","task_name":"add","priority":3,"args":[1,"два"],"kwargs":{"k":[true]},"created_at":1764460800.5}"#
        let message = try TaskMessage(jsonBytes: Array(body.utf8), messageID: "ignored")
        #expect(message.uuid == "u-1")
        #expect(message.taskName == "add")
        #expect(message.priority == 3)
        #expect(message.args == [1, "два"])
        #expect(message.kwargs == ["k": [true]])
        #expect(message.createdAt == 1764460800.5)
    }

    @Test func onlyTaskNameIsRequired() throws {
        let before = Date().timeIntervalSince1970
        let message = try TaskMessage(jsonBytes: Array(#"{"task_name":"ping"}"#.utf8))
        #expect(message.args == [])
        #expect(message.kwargs == [:])
        #expect(message.priority == 0)
        #expect(message.createdAt >= before)
        #expect(UUID(uuidString: message.uuid) != nil)
        #expect(message.uuid == message.uuid.lowercased())
    }

    @Test func uuidFallsBackToMessageID() throws {
        let message = try TaskMessage(jsonBytes: Array(#"{"task_name":"ping","uuid":null}"#.utf8), messageID: "mid-7")
        #expect(message.uuid == "mid-7")
    }

    @Test func integralFloatPriorityIsAccepted() throws {
        let message = try TaskMessage(jsonBytes: Array(#"{"task_name":"ping","priority":2.0}"#.utf8))
        #expect(message.priority == 2)
    }

    @Test(arguments: [
        (#"{"task_name": "add""#, "malformedJSON", "task message body is not valid JSON"),
        ("", "malformedJSON", "task message body is empty"),
        ("[1, 2]", "notAnObject", "task message must be a JSON object, found array"),
        (#""add""#, "notAnObject", "task message must be a JSON object, found string"),
        (#"{"args": [1]}"#, "invalidField", "task message has no task_name"),
        (#"{"task_name": null}"#, "invalidField", "task message has no task_name"),
        (#"{"task_name": 5}"#, "invalidField", "task_name must be a string, found number"),
        (#"{"task_name": "add", "args": {"a": 1}}"#, "invalidField", "args must be a JSON array, found object"),
        (#"{"task_name": "add", "kwargs": [1]}"#, "invalidField", "kwargs must be a JSON object, found array"),
        (#"{"task_name": "add", "priority": "high"}"#, "invalidField", "priority must be an integer, found string"),
        (#"{"task_name": "add", "priority": 1.5}"#, "invalidField", "priority must be an integer, found 1.5"),
        (#"{"task_name": "add", "uuid": 12}"#, "invalidField", "uuid must be a string, found number"),
        (#"{"task_name": "add", "created_at": "yesterday"}"#, "invalidField", "created_at must be a number (Unix seconds), found string"),
    ])
    func rejectsMalformedMessages(body: String, code: String, message: String) throws {
        let error = #expect(throws: TaskInputError.self) {
            try TaskMessage(jsonBytes: Array(body.utf8))
        }
        #expect(error?.code.description == code)
        #expect(error?.message.hasPrefix(message) == true, "got: \(error?.message ?? "nil")")
    }

    @Test func rejectsInvalidUTF8() throws {
        let bytes: [UInt8] = Array(#"{"task_name": "add", "args": [""#.utf8) + [0xFF, 0xFE] + Array(#""]}"#.utf8)
        let error = #expect(throws: TaskInputError.self) { try TaskMessage(jsonBytes: bytes) }
        #expect(error?.code == .malformedJSON)
        #expect(error?.message == "task message body is not valid UTF-8")
    }

    @Test func rejectsDeepNestingWithoutCrashing() throws {
        let depth = 100_000
        let bytes = Array(#"{"task_name": "add", "args": "#.utf8)
            + [UInt8](repeating: UInt8(ascii: "["), count: depth)
            + [UInt8](repeating: UInt8(ascii: "]"), count: depth)
            + [UInt8(ascii: "}")]
        let error = #expect(throws: TaskInputError.self) { try TaskMessage(jsonBytes: bytes) }
        #expect(error?.code == .malformedJSON)
        #expect(error?.message == "task message JSON nests deeper than 512 levels")
    }

    @Test func taskMessageRoundTrips() throws {
        let message = TaskMessage(taskName: "greet", args: ["Привет/мир"], kwargs: ["n": 2], priority: 1, uuid: "u", createdAt: 12.5)
        let bytes = message.jsonBytes()
        let text = String(decoding: bytes, as: UTF8.self)
        #expect(text.contains("Привет/мир"), "non-ASCII and slashes stay unescaped: \(text)")
        #expect(try TaskMessage(jsonBytes: bytes) == message)
        let object = try jsonObject(bytes)
        #expect(Set(object.keys) == ["uuid", "task_name", "priority", "args", "kwargs", "created_at"])
    }

    @Test func resultBodyHasEveryField() throws {
        let result = TaskResult(
            uuid: "u", taskName: "greet", status: .success, returning: ["text": "Ёжик/в тумане"],
            createdAt: 10.25, updatedAt: 11.5, retry: 0
        )
        let bytes = result.jsonBytes()
        let text = String(decoding: bytes, as: UTF8.self)
        #expect(text.contains("Ёжик/в тумане"))
        let object = try jsonObject(bytes)
        #expect(Set(object.keys) == ["uuid", "task_name", "status", "returning", "traceback", "created_at", "updated_at", "retry"])
        #expect(object["status"] as? String == "success")
        #expect(object["traceback"] is NSNull)
        #expect(object["created_at"] as? Double == 10.25)
        #expect(try TaskResult(jsonBytes: bytes) == result)
    }

    @Test func errorResultHasNullReturning() throws {
        let result = TaskResult(uuid: "u", taskName: "t", status: .error, traceback: "Boom: bad", createdAt: 1, updatedAt: 2, retry: 1)
        let object = try jsonObject(result.jsonBytes())
        #expect(object["returning"] is NSNull)
        #expect(object["traceback"] as? String == "Boom: bad")
        #expect(object["retry"] as? Int == 1)
        // The Codable path writes the same fields.
        let viaEncoder = try JSONSerialization.jsonObject(with: JSONEncoder().encode(result)) as! [String: Any]
        #expect(Set(viaEncoder.keys) == Set(object.keys))
        #expect(try JSONDecoder().decode(TaskResult.self, from: JSONEncoder().encode(result)) == result)
    }
}
