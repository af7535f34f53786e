import AMQP
import Foundation
import QTasks
import Testing

/// Producers that are not our code publish tasks; the worker process answers
/// on their reply queue with the documented result body.
@Suite(.enabled(if: IntegrationEnvironment.enabled, "no RabbitMQ reachable at QTASKS_URL; deploy/test.sh starts one"),
       .timeLimit(.minutes(2)))
struct ForeignProducerTests {
    /// Debian's `amqp-publish` (amqp-tools) has `--reply-to` (`-t`) but no
    /// option for a correlation id (its `-E` is content-encoding), so the
    /// result carries the task uuid as correlation id: the documented
    /// fallback.
    @Test func amqpPublishTaskGetsTheDocumentedResult() async throws {
        let amqpPublish = try #require(IntegrationEnvironment.onPath("amqp-publish"), "amqp-publish (Debian amqp-tools) is not installed")
        try await TestScope.run("amqp-publish") { scope in
            _ = try await scope.startWorker()
            let uuid = UUID().uuidString.lowercased()
            let createdAt = 1_764_460_800.5
            let body = #"{"uuid": "\#(uuid)", "task_name": "add", "priority": 0, "args": [2, 3], "kwargs": {}, "created_at": \#(createdAt)}"#
            let published = try await ChildProcess.run(
                amqpPublish,
                ["--url=\(IntegrationEnvironment.url)", "-r", scope.queue, "-p", "-C", "application/json",
                 "-t", scope.replyQueue, "-b", body],
                timeout: 15)
            #expect(published.termination == .exited(0), "\(published)")

            let reply = try await scope.nextReply("the result of the amqp-publish task")
            #expect(reply.correlationID == uuid, "no correlation id sent: the result carries the task uuid")
            reply.expectDocumented(uuid: uuid, taskName: "add", status: "success", returning: 5, createdAt: createdAt)
            #expect(reply.text.contains(#""returning":5,"#), "2 + 3 comes back as the integer 5: \(reply.text)")
        }
    }

    /// Only `task_name` is required: without uuid the worker makes one, and
    /// non-ASCII text in the body comes back unchanged.
    @Test func amqpPublishMinimalBodyWithNonASCIIText() async throws {
        let amqpPublish = try #require(IntegrationEnvironment.onPath("amqp-publish"), "amqp-publish (Debian amqp-tools) is not installed")
        try await TestScope.run("amqp-publish-min") { scope in
            _ = try await scope.startWorker()
            let body = #"{"task_name": "echo", "args": ["Введите телефон", "📞 +7 999"], "kwargs": {"город": "Москва 🏙"}}"#
            let published = try await ChildProcess.run(
                amqpPublish, ["--url=\(IntegrationEnvironment.url)", "-r", scope.queue, "-t", scope.replyQueue, "-b", body],
                timeout: 15)
            #expect(published.termination == .exited(0), "\(published)")

            let reply = try await scope.nextReply("the result of the minimal amqp-publish task")
            let uuid = try #require(reply.uuid)
            #expect(reply.correlationID == uuid)
            reply.expectDocumented(
                uuid: nil, taskName: "echo", status: "success",
                returning: ["args": ["Введите телефон", "📞 +7 999"], "kwargs": ["город": "Москва 🏙"]])
            #expect(reply.text.contains("Введите телефон") && reply.text.contains("Москва 🏙"), "UTF-8, not \\u escapes: \(reply.text)")
        }
    }

    /// Python's pika publishes with reply_to (its own exclusive queue) and a
    /// correlation id of its choosing, waits for the reply itself and prints
    /// it.
    @Test func pikaTaskGetsTheDocumentedResultOnItsOwnReplyQueue() async throws {
        try await TestScope.run("pika") { scope in
            _ = try await scope.startWorker()
            let uuid = UUID().uuidString.lowercased()
            let correlationID = "pika-\(UUID().uuidString.prefix(8))"
            let createdAt = 1_764_460_801.25
            let body = #"{"uuid": "\#(uuid)", "task_name": "add", "priority": 0, "args": [2], "kwargs": {"b": 3}, "created_at": \#(createdAt)}"#
            let reply = try await PikaProducer.send(body, to: scope.queue, correlationID: correlationID)
            #expect(reply.correlationID == correlationID)
            reply.expectDocumented(uuid: uuid, taskName: "add", status: "success", returning: 5, createdAt: createdAt)
        }
    }

    /// pika with Russian text and emoji in args and kwargs (sent as raw
    /// UTF-8): echo returns them exactly.
    @Test func pikaEchoRoundTripsNonASCIIText() async throws {
        try await TestScope.run("pika-utf8") { scope in
            _ = try await scope.startWorker()
            let uuid = UUID().uuidString.lowercased()
            let args: JSONValue = ["Введите телефон", "Ёжик в тумане 🦔🌫", 42, ["вложенный": true]]
            let kwargs: JSONValue = ["имя": "Иван", "emoji": "👍🏽👨‍👩‍👧", "日本語": "テキスト"]
            let message: JSONValue = ["uuid": .string(uuid), "task_name": "echo", "args": args, "kwargs": kwargs]
            let body = String(decoding: try JSONEncoder().encode(message), as: UTF8.self)
            let reply = try await PikaProducer.send(body, to: scope.queue, correlationID: uuid)
            #expect(reply.correlationID == uuid)
            reply.expectDocumented(uuid: uuid, taskName: "echo", status: "success", returning: ["args": args, "kwargs": kwargs])
        }
    }
}

/// Runs a small pika script: it publishes one task (with the body re-encoded
/// as raw UTF-8) to the queue with `reply_to` its own exclusive queue and the
/// given correlation id, waits up to 20 s for the reply, and prints
/// `{"correlation_id", "content_type", "body"}` as JSON.
enum PikaProducer {
    static let script = #"""
        import json, sys, time
        import pika

        url, queue, body, correlation_id = sys.argv[1:5]
        parameters = pika.URLParameters(url)
        parameters.socket_timeout = 5
        parameters.blocked_connection_timeout = 10
        connection = pika.BlockingConnection(parameters)
        channel = connection.channel()
        reply_queue = channel.queue_declare(queue="", exclusive=True).method.queue
        channel.confirm_delivery()
        channel.basic_publish(
            exchange="", routing_key=queue, mandatory=True,
            body=json.dumps(json.loads(body), ensure_ascii=False).encode("utf-8"),
            properties=pika.BasicProperties(
                content_type="application/json", delivery_mode=2,
                reply_to=reply_queue, correlation_id=correlation_id))
        replies = []
        channel.basic_consume(
            queue=reply_queue, auto_ack=True,
            on_message_callback=lambda ch, method, properties, body: replies.append((properties, body)))
        deadline = time.monotonic() + 20
        while not replies and time.monotonic() < deadline:
            connection.process_data_events(time_limit=0.2)
        connection.close()
        if not replies:
            sys.exit("no reply within 20 s")
        properties, body = replies[0]
        print(json.dumps({"correlation_id": properties.correlation_id,
                          "content_type": properties.content_type,
                          "body": body.decode("utf-8")}, ensure_ascii=False))
        """#

    static func send(_ body: String, to queue: String, correlationID: String) async throws -> ResultMessage {
        let python = try #require(IntegrationEnvironment.python, "no Python with pika: run deploy/install-deps.sh or set QTASKS_VENV")
        let run = try await ChildProcess.run(
            python, ["-c", script, IntegrationEnvironment.url, queue, body, correlationID],
            environment: ["PYTHONIOENCODING": "utf-8"], timeout: 40)
        try #require(run.termination == .exited(0), "pika producer: \(run)")
        let printed = try JSONDecoder().decode(JSONValue.self, from: Data(run.stdout.utf8))
        let replyBody = try #require(printed["body"]?.stringValue, "pika printed: \(run.stdout)")
        return try ResultMessage(
            body: Array(replyBody.utf8), correlationID: printed["correlation_id"]?.stringValue,
            contentType: printed["content_type"]?.stringValue)
    }
}
