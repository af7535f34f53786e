import Foundation
import QTasks
import Testing

struct Boom: Error, CustomStringConvertible {
    var description: String { "it went boom" }
}

struct LocalizedBoom: LocalizedError {
    var errorDescription: String? { "localized boom" }
}

@Suite struct TaskRunnerTests {
    @Test func contextCarriesTheMessage() async throws {
        let app = TaskApp()
        try app.register("inspect") { (context: TaskContext) -> JSONValue in
            [
                "uuid": .string(context.uuid),
                "task": .string(context.taskName),
                "attempt": .int(Int64(context.attempt)),
                "queue": .string(context.queue),
                "redelivered": .bool(context.redelivered),
                "message_id": context.messageID.map(JSONValue.string) ?? .null,
                "correlation_id": context.correlationID.map(JSONValue.string) ?? .null,
                "reply_to": context.replyTo.map(JSONValue.string) ?? .null,
                "priority": .int(Int64(context.priority)),
                "created_at": .double(context.createdAt),
                "header": context.headers["x-custom"] == .string("v") ? true : false,
                "current": .string(TaskContext.current?.uuid ?? "none"),
                "args": .array(context.arguments.args),
                "kwargs": .object(context.arguments.kwargs),
            ]
        }
        let properties = MessageProperties(
            correlationID: "corr", replyTo: "replies", messageID: "mid",
            headers: ["x-qtasks-attempt": .int(3), "x-custom": .string("v")]
        )
        let delivery = Delivery(
            message: Message(
                body: Array(#"{"uuid":"u-1","task_name":"inspect","priority":4,"created_at":99.5,"args":[1,"a"],"kwargs":{"k":null}}"#.utf8),
                properties: properties
            ),
            queue: "jobs",
            redelivered: true,
            token: DeliveryToken(generation: 1, tag: 1)
        )
        let outcome = await TaskRunner(app: app, logger: quietLogger).execute(delivery)
        guard case .completed(let result) = outcome else {
            Issue.record("expected success: \(outcome.result)")
            return
        }
        let expected: JSONValue = [
            "uuid": "u-1", "task": "inspect", "attempt": 3, "queue": "jobs", "redelivered": true,
            "message_id": "mid", "correlation_id": "corr", "reply_to": "replies", "priority": 4,
            "created_at": 99.5, "header": true, "current": "u-1", "args": [1, "a"], "kwargs": ["k": nil],
        ]
        #expect(result.returning == expected)
        #expect(result.retry == 2)
        #expect(result.createdAt == 99.5)
        #expect(result.updatedAt >= Date().timeIntervalSince1970 - 60)
    }

    @Test func attemptDefaultsToOneAndReadsStringHeaders() async throws {
        let app = TaskApp()
        try app.register("attempt") { (context: TaskContext) in context.attempt }
        #expect(await execute(app, #"{"task_name":"attempt"}"#).result.returning == 1)
        let properties = MessageProperties(headers: ["x-qtasks-attempt": .string("2")])
        #expect(await execute(app, #"{"task_name":"attempt"}"#, properties: properties).result.returning == 2)
    }

    @Test func typedHandlerCanReadRawArguments() async throws {
        let app = TaskApp()
        try app.register("greet", parameters: ["name"]) { (context: TaskContext, name: String) -> JSONValue in
            ["greeting": .string("hi \(name)"), "raw": .array(context.arguments.args), "kw": .object(context.arguments.kwargs)]
        }
        let outcome = await execute(app, #"{"task_name":"greet","args":["Аня"]}"#)
        #expect(outcome.result.returning == ["greeting": "hi Аня", "raw": ["Аня"], "kw": [:]])
    }

    @Test func contextOnlyHandlerTakesAnyArguments() async throws {
        let app = TaskApp()
        try app.register("echo") { (context: TaskContext) -> JSONValue in
            [.array(context.arguments.args), .object(context.arguments.kwargs)]
        }
        let outcome = await execute(app, #"{"task_name":"echo","args":[1,[2]],"kwargs":{"a":"b"}}"#)
        #expect(outcome.result.returning == [[1, [2]], ["a": "b"]])
        let bad = await execute(app, #"{"task_name":"echo","args":7}"#)
        #expect(bad.result.traceback == "TaskInputError: args must be a JSON array, found number")
    }

    @Test func uuidFallsBackToMessageID() async throws {
        let app = TaskApp()
        try app.register("id") { (context: TaskContext) in context.uuid }
        let outcome = await execute(app, #"{"task_name":"id"}"#, properties: MessageProperties(messageID: "m-1"))
        #expect(outcome.result.uuid == "m-1")
        #expect(outcome.result.returning == "m-1")
    }

    @Test func handlerErrorBecomesTraceback() async throws {
        let app = TaskApp()
        try app.register("boom") { () throws -> Int in throw Boom() }
        try app.register("localized") { () throws -> Int in throw LocalizedBoom() }
        let outcome = await execute(app, #"{"task_name":"boom"}"#)
        guard case .failed(let result, let failure) = outcome else {
            Issue.record("expected failure")
            return
        }
        #expect(result.status == .error)
        #expect(result.returning == nil)
        #expect(result.traceback == "Boom: it went boom")
        #expect(failure.errorType == "Boom")
        #expect(await execute(app, #"{"task_name":"localized"}"#).result.traceback == "LocalizedBoom: localized boom")
    }

    @Test func oversizeBodyIsRejectedUnread() async throws {
        let app = TaskApp()
        try app.register("t") { 1 }
        let body = #"{"task_name":"t","args":[""# + String(repeating: "x", count: 200) + #""]}"#
        let outcome = await execute(app, body, properties: MessageProperties(messageID: "big"), maxMessageBytes: 100)
        #expect(outcome.isRejected)
        #expect(outcome.result.uuid == "big")
        #expect(outcome.result.taskName == "")
        #expect(outcome.result.traceback == "TaskInputError: task message body is \(body.utf8.count) bytes, over the limit of 100 bytes")
    }

    @Test func unreadableBodyGetsANewUUIDAndEmptyTaskName() async {
        let outcome = await execute(TaskApp(), "not json")
        #expect(outcome.isRejected)
        #expect(outcome.result.taskName == "")
        #expect(UUID(uuidString: outcome.result.uuid) != nil)
        #expect(outcome.result.traceback?.hasPrefix("TaskInputError: task message body is not valid JSON") == true)
    }

    @Test func cancelledHandlerGivesCancelledOutcome() async throws {
        let app = TaskApp()
        try app.register("sleep") { () async throws -> Int in
            try await Task.sleep(for: .seconds(30))
            return 1
        }
        let executor = TaskRunner(app: app, logger: quietLogger)
        let task = Task { await executor.execute(makeDelivery(#"{"task_name":"sleep"}"#)) }
        try await Task.sleep(for: .milliseconds(50))
        task.cancel()
        let outcome = await task.value
        #expect(outcome.isCancelled)
        #expect(outcome.result.status == .cancel)
    }
}
