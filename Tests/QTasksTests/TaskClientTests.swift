import QTasks
import QTasksTesting
import Testing

@Suite struct TaskClientTests {
    @Test func timeoutIsAClearError() async throws {
        let broker = MemoryBroker()
        let client = TaskClient(broker: broker, logger: quietLogger)
        let handle = try await client.send("nobody_runs_this", args: [1])
        let start = ContinuousClock.now
        let error = await #expect(throws: TaskClientError.self) {
            try await handle.result(timeout: .milliseconds(100))
        }
        #expect(error?.code == .timeout)
        #expect(error?.uuid == handle.uuid)
        #expect(error?.message.contains("nobody_runs_this") == true)
        // Ended by the 0.1 s timeout, not a hang; loose for a loaded machine.
        #expect(ContinuousClock.now - start < .seconds(30))
        await client.close()
        await broker.close()
    }

    @Test func sendBuildsTheWireMessage() async throws {
        let broker = MemoryBroker()
        let client = TaskClient(broker: broker, logger: quietLogger)
        let handle = try await client.send("greet", args: ["Мир"], kwargs: ["loud": true], queue: "fresh", priority: 7)
        #expect(broker.queueNames.contains("fresh"), "the client declares a new queue so the message is not dropped")
        #expect(broker.queueNames.contains("fresh.dlq"))
        let message = try #require(broker.messages(in: "fresh").first)
        #expect(message.properties.messageID == handle.uuid)
        #expect(message.properties.correlationID == handle.uuid)
        #expect(message.properties.replyTo?.isEmpty == false)
        #expect(message.properties.persistent)
        #expect(message.properties.contentType == "application/json")
        let task = try TaskMessage(jsonBytes: message.body)
        #expect(task.uuid == handle.uuid)
        #expect(task.taskName == "greet")
        #expect(task.args == ["Мир"])
        #expect(task.kwargs == ["loud": true])
        #expect(task.priority == 7)
        await client.close()
        await broker.close()
    }

    @Test func resultThatArrivedBeforeWaitingIsKept() async throws {
        let app = TaskApp()
        try app.register("one") { 1 }
        try await TestWorker.run(app, configuration: quietConfiguration()) { client, broker in
            let handle = try await client.send("one")
            #expect(await eventually { broker.unackedCount == 0 && broker.readyCount(in: "default") == 0 })
            try await Task.sleep(for: .milliseconds(20))
            #expect(try await handle.result(timeout: .seconds(30)).returning == 1)
            // And again: the handle keeps it.
            #expect(try await handle.result(timeout: .milliseconds(1)).returning == 1)
        }
    }

    @Test func manyConcurrentSends() async throws {
        let app = TaskApp()
        try app.register("square") { (n: Int) in n * n }
        try await TestWorker.run(app, configuration: quietConfiguration(concurrency: 8)) { client, _ in
            try await withThrowingTaskGroup(of: (Int, JSONValue?).self) { group in
                for n in 0..<300 {
                    group.addTask {
                        let handle = try await client.send("square", n)
                        return (n, try await handle.result(timeout: .seconds(30)).returning)
                    }
                }
                var seen = 0
                for try await (n, returning) in group {
                    #expect(returning == .int(Int64(n * n)))
                    seen += 1
                }
                #expect(seen == 300)
            }
        }
    }

    @Test func closedClientRefusesToSend() async throws {
        let broker = MemoryBroker()
        let client = TaskClient(broker: broker, logger: quietLogger)
        let handle = try await client.send("x")
        await client.close()
        let waitError = await #expect(throws: TaskClientError.self) { try await handle.result(timeout: .seconds(5)) }
        #expect(waitError?.code == .closed)
        let sendError = await #expect(throws: TaskClientError.self) { try await client.send("x") }
        #expect(sendError?.code == .closed)
        await broker.close()
    }

    @Test func lostReplyQueueFailsWaiters() async throws {
        let broker = MemoryBroker()
        let client = TaskClient(broker: broker, logger: quietLogger)
        let handle = try await client.send("x")
        await broker.close()
        let error = await #expect(throws: TaskClientError.self) { try await handle.result(timeout: .seconds(5)) }
        #expect(error?.code == .replyQueueLost)
        await client.close()
    }
}
