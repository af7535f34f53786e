import AMQP
import Foundation
import QTasks
import Testing

/// Each kind of bad input: an error result to reply_to whose traceback says
/// what was wrong, the original message in `<queue>.dlq` with the
/// `x-qtasks-*` headers, one log line, and the worker goes on (the next good
/// task succeeds, and it still exits 0 on SIGTERM with nothing left
/// unacknowledged).
@Suite(.enabled(if: IntegrationEnvironment.enabled, "no RabbitMQ reachable at QTASKS_URL; deploy/test.sh starts one"),
       .timeLimit(.minutes(2)))
struct BadInputTests {
    @Test func unknownTaskName() async throws {
        let uuid = UUID().uuidString.lowercased()
        try await expectDeadLettered(
            "unknown-task", body: #"{"uuid": "\#(uuid)", "task_name": "no_such_task", "args": [1]}"#,
            uuid: uuid, taskName: "no_such_task", saying: ["unknown task 'no_such_task'"])
    }

    @Test func malformedJSON() async throws {
        try await expectDeadLettered(
            "malformed-json", body: #"{"task_name": "add", "args": [1, "#, saying: ["not valid JSON"])
    }

    @Test func jsonThatIsNotAnObject() async throws {
        try await expectDeadLettered("not-object", body: #"["add", 2, 3]"#, saying: ["must be a JSON object", "array"])
    }

    @Test func invalidUTF8Body() async throws {
        let body = Array(#"{"task_name": "echo", "args": [""#.utf8) + [0xFF, 0xFE, 0xC3] + Array(#""]}"#.utf8)
        try await expectDeadLettered("invalid-utf8", body: body, saying: ["not valid UTF-8"])
    }

    @Test func missingTaskName() async throws {
        let uuid = UUID().uuidString.lowercased()
        try await expectDeadLettered(
            "no-task-name", body: #"{"uuid": "\#(uuid)", "args": [2, 3]}"#, uuid: uuid, saying: ["no task_name"])
    }

    @Test func taskNameNotAString() async throws {
        try await expectDeadLettered("task-name-number", body: #"{"task_name": 5, "args": []}"#, saying: ["task_name must be a string"])
    }

    @Test func argumentOfTheWrongType() async throws {
        let uuid = UUID().uuidString.lowercased()
        try await expectDeadLettered(
            "wrong-type", body: #"{"uuid": "\#(uuid)", "task_name": "add", "args": ["two", 3]}"#,
            uuid: uuid, taskName: "add", saying: ["add()", "'a'", "expected Double", "string"])
    }

    @Test func tooManyArguments() async throws {
        let uuid = UUID().uuidString.lowercased()
        try await expectDeadLettered(
            "too-many", body: #"{"uuid": "\#(uuid)", "task_name": "add", "args": [1, 2, 3]}"#,
            uuid: uuid, taskName: "add", saying: ["add() takes 2 arguments but 3 were given"])
    }

    @Test func missingArgument() async throws {
        let uuid = UUID().uuidString.lowercased()
        try await expectDeadLettered(
            "missing-arg", body: #"{"uuid": "\#(uuid)", "task_name": "add", "args": [1]}"#,
            uuid: uuid, taskName: "add", saying: ["add() missing argument 'b'"])
    }

    @Test func unexpectedKeywordArgument() async throws {
        let uuid = UUID().uuidString.lowercased()
        try await expectDeadLettered(
            "bad-kwarg", body: #"{"uuid": "\#(uuid)", "task_name": "add", "args": [1], "kwargs": {"c": 2}}"#,
            uuid: uuid, taskName: "add", saying: ["unexpected keyword argument 'c'"])
    }

    @Test func argsThatAreNotAnArray() async throws {
        try await expectDeadLettered(
            "args-object", body: #"{"task_name": "add", "args": {"a": 1, "b": 2}}"#, taskName: "add",
            saying: ["args must be a JSON array"])
    }

    /// A well-formed task over the worker's `--max-message-bytes 1024`.
    @Test func bodyOverTheSizeLimit() async throws {
        let prefix = #"{"task_name": "echo", "args": [""#
        let suffix = #""]}"#
        let body = prefix + String(repeating: "x", count: 2000 - prefix.utf8.count - suffix.utf8.count) + suffix
        #expect(body.utf8.count == 2000)
        try await expectDeadLettered(
            "oversize", body: Array(body.utf8), maxMessageBytes: 1024,
            saying: ["2000 bytes", "over the limit of 1024 bytes"])
    }

    /// Not bad input but a handler that throws: the same error path, with the
    /// handler's error type in the headers.
    @Test func failingTaskIsDeadLettered() async throws {
        let uuid = UUID().uuidString.lowercased()
        try await expectDeadLettered(
            "fail", body: #"{"uuid": "\#(uuid)", "task_name": "fail", "args": ["Ошибка: boom"]}"#,
            uuid: uuid, taskName: "fail", errorType: "ExampleError", saying: ["Ошибка: boom"], logLine: "task failed, dead-lettered")
    }

    /// Bad input with no reply_to: nobody to answer, but it is still
    /// dead-lettered and the worker goes on.
    @Test func badInputWithoutReplyToIsStillDeadLettered() async throws {
        try await TestScope.run("no-reply-to") { scope in
            let worker = try await scope.startWorker()
            let body = Array(#"{"task_name": "add", "args": [1, "#.utf8)
            try await scope.admin.publish(body, to: scope.queue, properties: AMQPProperties(contentType: "application/json"))
            let dead = try await scope.admin.waitForMessage(in: scope.deadLetterQueue, timeout: 10, "the dead-lettered message")
            #expect(dead.body == body)
            #expect(dead.properties.headers?["x-qtasks-error-type"]?.text == "TaskInputError")
            #expect(dead.properties.headers?["x-qtasks-error-message"]?.text?.contains("not valid JSON") == true)

            let uuid = UUID().uuidString.lowercased()
            try await scope.publishTask(#"{"uuid": "\#(uuid)", "task_name": "add", "args": [2, 3]}"#, correlationID: uuid)
            let good = try await scope.nextReply("the good task after the unanswerable one")
            good.expectDocumented(uuid: uuid, taskName: "add", status: "success", returning: 5)
            await scope.stopGracefully(worker)
            #expect(try await scope.admin.queueInfo(scope.queue)?.messageCount == 0)
        }
    }

    // MARK: The shared check

    private func expectDeadLettered(
        _ what: String, body: String, maxMessageBytes: Int? = nil, uuid: String? = nil, taskName: String = "",
        errorType: String = "TaskInputError", saying parts: [String], logLine: String = "bad task message dead-lettered",
        sourceLocation: SourceLocation = #_sourceLocation
    ) async throws {
        try await expectDeadLettered(
            what, body: Array(body.utf8), maxMessageBytes: maxMessageBytes, uuid: uuid, taskName: taskName,
            errorType: errorType, saying: parts, logLine: logLine, sourceLocation: sourceLocation)
    }

    private func expectDeadLettered(
        _ what: String, body: [UInt8], maxMessageBytes: Int? = nil, uuid: String? = nil, taskName: String = "",
        errorType: String = "TaskInputError", saying parts: [String], logLine: String = "bad task message dead-lettered",
        sourceLocation: SourceLocation = #_sourceLocation
    ) async throws {
        try await TestScope.run(what) { scope in
            let worker = try await scope.startWorker(maxMessageBytes: maxMessageBytes)
            let before = Date().timeIntervalSince1970
            let correlationID = "bad-\(what)-\(UUID().uuidString.prefix(8))"
            try await scope.publishTask(body, correlationID: correlationID)

            // The error result, to reply_to, with the correlation id.
            let reply = try await scope.nextReply("the error result for \(what)")
            #expect(reply.correlationID == correlationID, sourceLocation: sourceLocation)
            reply.expectDocumented(
                uuid: uuid, taskName: taskName, status: "error", tracebackContains: ["\(errorType): "] + parts,
                sourceLocation: sourceLocation)
            #expect(reply.traceback?.hasPrefix("\(errorType): ") == true, "\(reply)", sourceLocation: sourceLocation)

            // The original message in the dead-letter queue, with the why.
            let dead = try await scope.admin.waitForMessage(in: scope.deadLetterQueue, timeout: 10, "the dead-lettered \(what)")
            let after = Date().timeIntervalSince1970
            #expect(dead.body == body, "the dead-letter copy has the original bytes", sourceLocation: sourceLocation)
            #expect(dead.properties.correlationID == correlationID, sourceLocation: sourceLocation)
            #expect(dead.properties.replyTo == scope.replyQueue, sourceLocation: sourceLocation)
            let headers = dead.properties.headers ?? [:]
            #expect(headers["x-qtasks-error-type"]?.text == errorType, "\(headers)", sourceLocation: sourceLocation)
            let message = headers["x-qtasks-error-message"]?.text ?? ""
            for part in parts {
                #expect(message.contains(part), "x-qtasks-error-message lacks \"\(part)\": \(headers)", sourceLocation: sourceLocation)
            }
            #expect(headers["x-qtasks-origin-queue"]?.text == scope.queue, "\(headers)", sourceLocation: sourceLocation)
            let failedAt = headers["x-qtasks-failed-at"]?.number ?? 0
            #expect(failedAt >= before - 1 && failedAt <= after + 1, "x-qtasks-failed-at: \(headers)", sourceLocation: sourceLocation)
            #expect(headers["x-qtasks-attempts"]?.number == 1, "\(headers)", sourceLocation: sourceLocation)
            #expect(try await scope.admin.get(scope.deadLetterQueue) == nil, "exactly one dead-letter copy", sourceLocation: sourceLocation)

            // The worker goes on.
            let goodUUID = UUID().uuidString.lowercased()
            try await scope.publishTask(#"{"uuid": "\#(goodUUID)", "task_name": "add", "args": [2, 3]}"#, correlationID: goodUUID)
            let good = try await scope.nextReply("the good task after \(what)")
            #expect(good.correlationID == goodUUID, sourceLocation: sourceLocation)
            good.expectDocumented(uuid: goodUUID, taskName: "add", status: "success", returning: 5, sourceLocation: sourceLocation)

            // Both acknowledged: after a clean exit nothing returns to the queue.
            await scope.stopGracefully(worker, sourceLocation: sourceLocation)
            let info = try await scope.admin.queueInfo(scope.queue)
            #expect(info?.messageCount == 0, "messages left in \(scope.queue)", sourceLocation: sourceLocation)
            let log = worker.standardErrorText
            #expect(log.components(separatedBy: logLine).count - 1 == 1, "one log line '\(logLine)':\n\(log)", sourceLocation: sourceLocation)
        }
    }
}

extension AMQPFieldValue {
    /// The text of a string header (long strings may arrive as bytes).
    var text: String? {
        switch self {
        case .string(let value): value
        case .bytes(let bytes): String(validating: bytes, as: UTF8.self)
        default: nil
        }
    }

    /// Any numeric header as a Double.
    var number: Double? {
        switch self {
        case .int8(let value): Double(value)
        case .uint8(let value): Double(value)
        case .int16(let value): Double(value)
        case .uint16(let value): Double(value)
        case .int32(let value): Double(value)
        case .uint32(let value): Double(value)
        case .int64(let value): Double(value)
        case .uint64(let value): Double(value)
        case .float(let value): Double(value)
        case .double(let value): value
        case .timestamp(let value): Double(value)
        default: nil
        }
    }
}
