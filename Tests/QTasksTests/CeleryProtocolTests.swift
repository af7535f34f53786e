import Foundation
import QTasks
import QTasksTesting
import Testing

/// Celery protocol 2 messages on the worker, over the memory broker: the
/// format is told per message, the arguments go through the same typed
/// decoding, and results come back in the `rpc://` backend's shape.
@Suite struct CeleryProtocolTests {
    func makeApp() throws -> TaskApp {
        let app = TaskApp(name: "celery-test")
        try app.register("add", parameters: ["a", "b"]) { (a: Int, b: Int) in a + b }
        try app.register("fail") { () throws -> Int in throw Boom() }
        return app
    }

    func celeryProperties(task: String, id: String, replyTo: String? = "replies", extra: [String: HeaderValue] = [:])
        -> MessageProperties
    {
        var headers: [String: HeaderValue] = [
            "lang": .string("py"), "task": .string(task), "id": .string(id), "retries": .int(0), "eta": .void,
            "timelimit": .array([.void, .void]), "argsrepr": .string("(2, 3)"), "ignore_result": .bool(false),
        ]
        headers.merge(extra) { $1 }
        return MessageProperties(
            contentType: "application/json", contentEncoding: "utf-8", correlationID: id, replyTo: replyTo,
            headers: headers)
    }

    func publish(_ body: String, _ properties: MessageProperties, to broker: MemoryBroker) async throws {
        broker.declareQueue("replies")
        try await broker.publish(Message(body: Array(body.utf8), properties: properties), to: "default", mandatory: true)
    }

    func reply(_ correlationID: String, in broker: MemoryBroker) async throws -> (Message, [String: Any]) {
        var found: Message?
        let arrived = await eventually {
            found = broker.messages(in: "replies").first { $0.properties.correlationID == correlationID }
            return found != nil
        }
        #expect(arrived, "no reply for \(correlationID)")
        let message = try #require(found)
        return (message, try jsonObject(message.body))
    }

    @Test func detectsTheFormatByTheTaskHeader() {
        #expect(WireFormat(detecting: MessageProperties()) == .qtasks)
        #expect(WireFormat(detecting: MessageProperties(headers: ["task": .string("add"), "id": .string("x")])) == .celery)
        #expect(WireFormat(detecting: MessageProperties(headers: ["task": .int(1)])) == .qtasks)
    }

    @Test func successComesBackInTheRPCBackendShape() async throws {
        try await TestWorker.run(makeApp(), configuration: quietConfiguration()) { _, broker in
            let id = "c-\(UUID().uuidString.lowercased())"
            let embed = #"{"callbacks": null, "errbacks": null, "chain": null, "chord": null}"#
            try await publish("[[2], {\"b\": 3}, \(embed)]", celeryProperties(task: "add", id: id), to: broker)
            let (message, body) = try await reply(id, in: broker)
            #expect(message.properties.contentType == "application/json")
            #expect(message.properties.contentEncoding == "utf-8")
            #expect(body["task_id"] as? String == id)
            #expect(body["status"] as? String == "SUCCESS")
            #expect(body["result"] as? Int == 5)
            #expect(body["traceback"] is NSNull)
            #expect((body["children"] as? [Any])?.isEmpty == true)
            let date = try #require(body["date_done"] as? String)
            #expect(date.hasSuffix("+00:00") && date.contains("T"), "\(date)")
            #expect(await eventually { broker.unackedCount == 0 })
        }
    }

    @Test func failureCarriesTheErrorTypeAndMessage() async throws {
        try await TestWorker.run(makeApp(), configuration: quietConfiguration()) { _, broker in
            let id = "c-\(UUID().uuidString.lowercased())"
            try await publish("[[], {}, {}]", celeryProperties(task: "fail", id: id), to: broker)
            let (_, body) = try await reply(id, in: broker)
            #expect(body["status"] as? String == "FAILURE")
            let exception = try #require(body["result"] as? [String: Any])
            #expect(exception["exc_type"] as? String == "Boom")
            #expect(exception["exc_message"] as? [String] == ["it went boom"])
            #expect(exception["exc_module"] is NSNull)
            #expect(body["traceback"] as? String == "Boom: it went boom")
            // Dead-lettered as any failure, still in Celery's format.
            #expect(await eventually { broker.readyCount(in: "default.dlq") == 1 })
            let dead = try #require(broker.messages(in: "default.dlq").first)
            #expect(dead.properties.headers["task"] == .string("fail"))
        }
    }

    @Test func badCeleryInputIsAFailureWithItsID() async throws {
        try await TestWorker.run(makeApp(), configuration: quietConfiguration()) { _, broker in
            let cases: [(String, MessageProperties, String)] = [
                ("[[1, 2, 3], {}, {}]", celeryProperties(task: "add", id: "bad-arity"), "add() takes 2 arguments but 3 were given"),
                ("[[2, 3], {}, {}]", celeryProperties(task: "nope", id: "bad-name"), "unknown task 'nope'"),
                (#"{"task": "add", "id": "x", "args": [2, 3]}"#, celeryProperties(task: "add", id: "bad-v1"), "protocol 1"),
                ("[\"2\", {}, {}]", celeryProperties(task: "add", id: "bad-args"), "Celery args must be a JSON array"),
                ("not json", celeryProperties(task: "add", id: "bad-json"), "TaskInputError"),
            ]
            var pickle = celeryProperties(task: "add", id: "bad-pickle")
            pickle.contentType = "application/x-python-serialize"
            for (body, properties, _) in cases { try await publish(body, properties, to: broker) }
            try await publish("garbage", pickle, to: broker)
            for (_, properties, expected) in cases + [("", pickle, "content type 'application/x-python-serialize'")] {
                let id = try #require(properties.correlationID)
                let (_, body) = try await reply(id, in: broker)
                #expect(body["task_id"] as? String == id)
                #expect(body["status"] as? String == "FAILURE")
                let exception = try #require(body["result"] as? [String: Any])
                #expect(exception["exc_type"] as? String == "TaskInputError")
                let traceback = try #require(body["traceback"] as? String)
                #expect(traceback.contains(expected), "\(id): \(traceback)")
            }
            #expect(await eventually { broker.readyCount(in: "default.dlq") == cases.count + 1 })
        }
    }

    @Test func ignoreResultPublishesNothing() async throws {
        try await TestWorker.run(makeApp(), configuration: quietConfiguration()) { _, broker in
            let quiet = celeryProperties(task: "add", id: "quiet", extra: ["ignore_result": .bool(true)])
            try await publish("[[1, 1], {}, {}]", quiet, to: broker)
            try await publish("[[1, 2], {}, {}]", celeryProperties(task: "add", id: "loud"), to: broker)
            let (_, body) = try await reply("loud", in: broker)
            #expect(body["result"] as? Int == 3)
            #expect(await eventually { broker.unackedCount == 0 && broker.readyCount(in: "default") == 0 })
            #expect(broker.messages(in: "replies").count == 1)
        }
    }

    @Test func isoDateMatchesPythonsIsoformat() {
        let result = CeleryResult(
            TaskResult(uuid: "u", taskName: "t", status: .success, returning: 1, createdAt: 0, updatedAt: 1_764_460_800.25))
        let text = String(decoding: result.jsonBytes(), as: UTF8.self)
        #expect(text.contains(#""date_done":"2025-11-30T00:00:00.250000+00:00""#), "\(text)")
    }
}
