import Foundation
import QTasks
import QTasksTesting
import Testing

@Suite struct WorkerTests {
    func makeApp() throws -> TaskApp {
        let app = TaskApp(name: "worker-test")
        try app.register("add", parameters: ["a", "b"]) { (a: Int, b: Int) in a + b }
        try app.register("echo_text") { (text: String) in text }
        try app.register("fail") { () throws -> Int in throw Boom() }
        return app
    }

    /// Publishes a raw message as a foreign producer would, with a reply
    /// queue the test reads directly.
    func publishRaw(_ body: [UInt8], to broker: MemoryBroker, correlationID: String, queue: String = "default") async throws {
        broker.declareQueue("replies")
        let message = Message(body: body, properties: MessageProperties(contentType: "application/json", correlationID: correlationID, replyTo: "replies"))
        try await broker.publish(message, to: queue, mandatory: true)
    }

    func reply(_ correlationID: String, in broker: MemoryBroker) async throws -> (Message, TaskResult) {
        var found: Message?
        let arrived = await eventually {
            found = broker.messages(in: "replies").first { $0.properties.correlationID == correlationID }
            return found != nil
        }
        #expect(arrived, "no reply for \(correlationID)")
        let message = try #require(found)
        return (message, try TaskResult(jsonBytes: message.body))
    }

    @Test func resultArrivesWithTheCorrelationID() async throws {
        try await TestWorker.run(makeApp(), configuration: quietConfiguration()) { client, broker in
            try await publishRaw(Array(#"{"uuid":"u-1","task_name":"add","args":[2,3]}"#.utf8), to: broker, correlationID: "corr-1")
            let (message, result) = try await reply("corr-1", in: broker)
            #expect(message.properties.contentType == "application/json")
            #expect(result.uuid == "u-1")
            #expect(result.status == .success)
            #expect(result.returning == 5)
            #expect(await eventually { broker.unackedCount == 0 && broker.readyCount(in: "default") == 0 })
            #expect(broker.readyCount(in: "default.dlq") == 0)
        }
    }

    @Test func correlationIDDefaultsToTheTaskUUID() async throws {
        try await TestWorker.run(makeApp(), configuration: quietConfiguration()) { client, broker in
            broker.declareQueue("replies")
            let message = Message(body: Array(#"{"uuid":"u-2","task_name":"add","args":[1,1]}"#.utf8), properties: MessageProperties(replyTo: "replies"))
            try await broker.publish(message, to: "default", mandatory: true)
            let (_, result) = try await reply("u-2", in: broker)
            #expect(result.returning == 2)
        }
    }

    @Test func clientRoundTrip() async throws {
        try await TestWorker.run(makeApp(), configuration: quietConfiguration()) { client, _ in
            let positional = try await client.send("add", 2, 3).result(timeout: .seconds(30))
            #expect(positional.returning == 5)
            let keyword = try await client.send("add", kwargs: ["a": 4, "b": 5]).result(timeout: .seconds(30))
            #expect(keyword.returning == 9)
            let handle = try await client.send("fail")
            let failed = try await handle.result(timeout: .seconds(30))
            #expect(failed.status == .error)
            #expect(failed.traceback == "Boom: it went boom")
            #expect(failed.uuid == handle.uuid)
            #expect(failed.taskName == "fail")
        }
    }

    @Test func russianTextRoundTripsUnchanged() async throws {
        let text = "Привет, мир! Ёжик в тумане / «кавычки» — 😀"
        try await TestWorker.run(makeApp(), configuration: quietConfiguration()) { client, broker in
            let result = try await client.send("echo_text", text).result(timeout: .seconds(30))
            #expect(result.returning == .string(text))
            let body = TaskMessage(taskName: "echo_text", args: [.string(text)]).jsonBytes()
            try await publishRaw(body, to: broker, correlationID: "ru")
            let (message, decoded) = try await reply("ru", in: broker)
            #expect(decoded.returning == .string(text))
            let raw = String(decoding: message.body, as: UTF8.self)
            #expect(raw.contains(text), "result body must carry the text unescaped: \(raw)")
        }
    }

    /// Each kind of bad input: an error result that says what is wrong, a
    /// copy in the dead-letter queue with the x-qtasks headers, and the
    /// worker goes on with the next task.
    @Test(arguments: [
        ("unknown", Array(#"{"task_name":"nope","args":[]}"#.utf8), "TaskInputError: unknown task 'nope'"),
        ("malformed", Array(#"{"task_name":"add","args":[1,"#.utf8), "TaskInputError: task message body is not valid JSON"),
        ("shape", Array(#"{"task_name":"add","args":{"a":1}}"#.utf8), "TaskInputError: args must be a JSON array, found object"),
        ("types", Array(#"{"task_name":"add","args":[1,"x"]}"#.utf8), #"TaskInputError: add() argument 2 ('b'): expected Int, found string "x""#),
        ("no-name", Array(#"{"args":[1,2]}"#.utf8), "TaskInputError: task message has no task_name"),
        ("oversize", Array(#"{"task_name":"add","args":[1,2],"pad":""#.utf8) + Array(repeating: UInt8(ascii: "x"), count: 2_000) + Array(#""}"#.utf8),
         "TaskInputError: task message body is 2"),
        ("handler", Array(#"{"task_name":"fail"}"#.utf8), "Boom: it went boom"),
    ])
    func badInputIsDeadLetteredAndTheWorkerGoesOn(label: String, body: [UInt8], traceback: String) async throws {
        let before = Date().timeIntervalSince1970
        try await TestWorker.run(makeApp(), configuration: quietConfiguration(maxMessageBytes: 1_000)) { client, broker in
            try await publishRaw(body, to: broker, correlationID: label)
            let (_, result) = try await reply(label, in: broker)
            #expect(result.status == .error)
            #expect(result.returning == nil)
            #expect(result.traceback?.hasPrefix(traceback) == true, "\(label): \(result.traceback ?? "nil")")

            #expect(await eventually { broker.readyCount(in: "default.dlq") == 1 })
            let dead = try #require(broker.messages(in: "default.dlq").first)
            #expect(dead.body == body)
            #expect(dead.properties.correlationID == label)
            #expect(dead.properties.replyTo == "replies")
            let headers = dead.properties.headers
            let isHandlerError = label == "handler"
            #expect(headers["x-qtasks-error-type"] == .string(isHandlerError ? "Boom" : "TaskInputError"))
            if case .string(let message)? = headers["x-qtasks-error-message"] {
                #expect(traceback.hasSuffix(message) || (result.traceback ?? "").hasSuffix(message))
                #expect(!message.isEmpty)
            } else {
                Issue.record("x-qtasks-error-message missing")
            }
            #expect(headers["x-qtasks-origin-queue"] == .string("default"))
            #expect(headers["x-qtasks-attempts"] == .int(1))
            if case .double(let failedAt)? = headers["x-qtasks-failed-at"] {
                #expect(failedAt >= before - 1 && failedAt <= Date().timeIntervalSince1970 + 1)
            } else {
                Issue.record("x-qtasks-failed-at missing")
            }
            // Acknowledged, not requeued.
            #expect(await eventually { broker.unackedCount == 0 })
            #expect(broker.readyCount(in: "default") == 0)

            let next = try await client.send("add", 20, 22).result(timeout: .seconds(30))
            #expect(next.returning == 42)
        }
    }

    @Test func concurrencyLimitIsRespected() async throws {
        let probe = ConcurrencyProbe()
        let app = TaskApp()
        try app.register("slow") { () async throws -> Int in
            probe.enter()
            defer { probe.leave() }
            // Held until three ran at once (10 s at most): the limit is
            // reached however slowly a loaded machine sends the tasks (a
            // fixed 30 ms needed them sent faster), and a fourth slot, if
            // the worker gave one, would show.
            let deadline = ContinuousClock.now + .seconds(10)
            while probe.maximum < 3, ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(5))
            }
            try await Task.sleep(for: .milliseconds(30))
            return 1
        }
        try await TestWorker.run(app, configuration: quietConfiguration(concurrency: 3)) { client, broker in
            var handles: [TaskHandle<JSONValue>] = []
            for _ in 0..<15 { handles.append(try await client.send("slow")) }
            for handle in handles {
                #expect(try await handle.result(timeout: .seconds(20)).returning == 1)
            }
            #expect(probe.maximum == 3)
            #expect(probe.finished == 15)
        }
    }

    @Test func failedReplyPublishLeavesTheDeliveryUnacknowledged() async throws {
        let broker = MemoryBroker()
        try await TestWorker.run(makeApp(), configuration: quietConfiguration(), broker: broker) { _, broker in
            broker.declareQueue("replies")
            broker.failPublishes(to: "replies", with: BrokerError(.connectionLost, "test: connection lost"))
            try await broker.publish(
                Message(body: Array(#"{"task_name":"add","args":[1,2]}"#.utf8), properties: MessageProperties(replyTo: "replies")),
                to: "default", mandatory: true
            )
            #expect(await eventually { broker.unackedCount == 1 })
            try await Task.sleep(for: .milliseconds(50))
            #expect(broker.unackedCount == 1, "must not be acknowledged")
            #expect(broker.readyCount(in: "default.dlq") == 0)
        }
        // Closing the broker returns it to the queue: not lost.
        #expect(broker.readyCount(in: "default") == 1)
    }

    @Test func failedDeadLetterPublishLeavesTheDeliveryUnacknowledged() async throws {
        let broker = MemoryBroker()
        try await TestWorker.run(makeApp(), configuration: quietConfiguration(), broker: broker) { _, broker in
            broker.failPublishes(to: "default.dlq", with: BrokerError(.nacked, "test: nack"))
            try await broker.publish(Message(body: Array(#"{"task_name":"fail"}"#.utf8)), to: "default", mandatory: true)
            #expect(await eventually { broker.unackedCount == 1 })
            try await Task.sleep(for: .milliseconds(50))
            #expect(broker.unackedCount == 1)
        }
        #expect(broker.readyCount(in: "default") == 1)
    }

    @Test func consumesSeveralQueues() async throws {
        try await TestWorker.run(makeApp(), configuration: quietConfiguration(queues: ["a", "b"])) { client, broker in
            #expect(broker.queueNames.contains("a.dlq") && broker.queueNames.contains("b.dlq"))
            let first = try await client.send("add", 1, 2, queue: "a")
            let second = try await client.send("add", 3, 4, queue: "b")
            #expect(try await first.result(timeout: .seconds(30)).returning == 3)
            #expect(try await second.result(timeout: .seconds(30)).returning == 7)
        }
    }
}

/// Issue #17, item 8: queue names and prefetch checked before anything is
/// declared.
@Suite struct WorkerConfigurationValidationTests {
    @Test func theLongestTaskQueueNameLeavesRoomForItsRetryQueues() {
        #expect(QueueNaming.longestTaskQueueName == 238)
        let longest = String(repeating: "q", count: 238)
        #expect((longest + ".retry.\(QueueNaming.longestRetryDelayMilliseconds)").utf8.count == 255)
        #expect(throws: Never.self) { try QueueNaming.validateTaskQueue(longest) }
        let error = #expect(throws: QueueNameError.self) { try QueueNaming.validateTaskQueue(longest + "é") }
        #expect(error?.code == .tooLong)
        #expect(error?.message.contains("240 bytes; at most 238") == true, "\(String(describing: error))")
    }

    @Test("Refused queue names", arguments: [("", QueueNameError.Code.empty), ("amq.gen-x", .reserved), (String(repeating: "x", count: 300), .tooLong)])
    func refusedNames(name: String, code: QueueNameError.Code) {
        let error = #expect(throws: QueueNameError.self) { try WorkerConfiguration(queues: ["ok", name]).validate() }
        #expect(error?.code == code)
    }

    @Test func prefetchIsRefusedOverAMQPsLimitAndTheDefaultStopsThere() throws {
        #expect(throws: WorkerConfigurationError.self) { try WorkerConfiguration(prefetch: 70_000).validate() }
        #expect(throws: WorkerConfigurationError.self) { try WorkerConfiguration(prefetch: 0).validate() }
        var perQueue = WorkerConfiguration(queues: ["a"])
        perQueue.queueConcurrency = ["a": 70_000]
        #expect(throws: WorkerConfigurationError.self) { try perQueue.validate() }
        #expect(throws: WorkerConfigurationError.self) { try WorkerConfiguration(queues: []).validate() }
        #expect(throws: WorkerConfigurationError.self) { try WorkerConfiguration(maxMessageBytes: 0).validate() }
        // Given: kept as given. Derived: 4 × concurrency, at most 65535.
        #expect(WorkerConfiguration(concurrency: 100_000).effectivePrefetch == 65_535)
        #expect(WorkerConfiguration(concurrency: .max).effectivePrefetch == 65_535)
        #expect(WorkerConfiguration(concurrency: 10).effectivePrefetch == 40)
        #expect(WorkerConfiguration(prefetch: 65_535).effectivePrefetch == 65_535)
        try WorkerConfiguration(concurrency: 100_000, prefetch: 65_535).validate()
    }

    /// A library user gets the error from `run()` before the broker sees
    /// anything: nothing is declared.
    @Test func runThrowsBeforeDeclaringAnything() async throws {
        let broker = MemoryBroker()
        let worker = Worker(broker: broker, app: TaskApp(), configuration: WorkerConfiguration(queues: ["good", ""]))
        await #expect(throws: QueueNameError.self) { try await worker.run() }
        #expect(broker.queueNames.isEmpty, "\(broker.queueNames)")
        await #expect(throws: BrokerError.self) { try await broker.declareTaskQueue("") }
        await #expect(throws: BrokerError.self) { try await broker.declareTaskQueue(String(repeating: "x", count: 239)) }
    }
}
