import Foundation
import QTasks
import QTasksTesting
import Testing

@Suite struct RoutingAndPriorityTests {
    @Test func priorityMappingTurnsLowerFirstIntoHigherFirst() {
        let mapping = PriorityMapping(maxPriority: 9)
        #expect(mapping.amqpPriority(for: 0) == 9)
        #expect(mapping.amqpPriority(for: 1) == 8)
        #expect(mapping.amqpPriority(for: 5) == 4)
        #expect(mapping.amqpPriority(for: 9) == 0)
        #expect(mapping.amqpPriority(for: 100) == 0)
        #expect(mapping.amqpPriority(for: -3) == 9)
        #expect(mapping.amqpPriority(for: Int.min) == 9)
        #expect(mapping.amqpPriority(for: Int.max) == 0)
        #expect(mapping.qtasksPriority(forAMQP: 9) == 0)
        #expect(mapping.qtasksPriority(forAMQP: 4) == 5)
        #expect(mapping.qtasksPriority(forAMQP: 200) == 0)
        #expect(PriorityMapping(maxPriority: 1000).maxPriority == 255)
        for priority in 0...9 {
            #expect(mapping.qtasksPriority(forAMQP: mapping.amqpPriority(for: priority)) == priority)
        }
    }

    @Test func clientSendsATaskToItsRegisteredQueue() async throws {
        let app = TaskApp()
        try app.register("mail", options: TaskOptions(queue: "emails")) { (to: String) in "sent to \(to)" }
        try app.register("add") { (a: Int, b: Int) in a + b }
        #expect(app.queue(for: "mail") == "emails")
        #expect(app.queue(for: "add") == nil)
        #expect(app.defaultQueues == ["default", "emails"])

        let broker = MemoryBroker()
        let worker = Worker(broker: broker, app: app, configuration: quietConfiguration(queues: app.defaultQueues))
        let running = Task { try await worker.run() }
        let client = TaskClient(broker: broker, app: app)
        let mail = try await client.send("mail", "ann")
        #expect(mail.queue == "emails")
        #expect(try await mail.result(timeout: .seconds(30)).returning == "sent to ann")
        let add = try await client.send("add", 2, 3)
        #expect(add.queue == "default")
        // The caller's queue wins.
        let redirected = try await client.send("mail", args: ["bob"], queue: "default")
        #expect(redirected.queue == "default")
        #expect(try await redirected.result(timeout: .seconds(30)).returning == "sent to bob")
        await client.close()
        worker.triggerGracefulShutdown()
        try await running.value
    }

    /// On a broker without priority queues the client sets no AMQP priority.
    @Test func noAMQPPriorityWithoutAPriorityQueue() async throws {
        let app = TaskApp()
        try app.register("add") { (a: Int, b: Int) in a + b }
        let broker = MemoryBroker()
        let client = TaskClient(broker: broker)
        _ = try await client.send("add", args: [1, 2], priority: 3)
        let message = try #require(broker.messages(in: "default").first)
        #expect(message.properties.priority == nil)
        #expect(try TaskMessage(jsonBytes: message.body).priority == 3)
        await client.close()
    }

    /// A queue with its own concurrency never runs more than that at once,
    /// while another queue keeps the worker's other slots.
    @Test func queueConcurrencyLimitsOneQueue() async throws {
        let app = TaskApp()
        let slow = ConcurrencyProbe()
        let fast = ConcurrencyProbe()
        try app.register("slow") { () async throws -> Int in
            slow.enter()
            defer { slow.leave() }
            try await Task.sleep(for: .milliseconds(20))
            return 1
        }
        try app.register("fast") { () async throws -> Int in
            fast.enter()
            defer { fast.leave() }
            // Held until three ran at once (10 s at most): the slots the
            // worker gives `fast` show however slowly a loaded machine
            // sends the tasks (a fixed 20 ms needed them sent faster).
            let deadline = ContinuousClock.now + .seconds(10)
            while fast.maximum < 3, ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(5))
            }
            return 1
        }
        var configuration = quietConfiguration(queues: ["slow", "fast"], concurrency: 6)
        configuration.queueConcurrency = ["slow": 2]
        #expect(configuration.subscriptions == [QueueSubscription(queue: "slow", prefetch: 2), QueueSubscription(queue: "fast", prefetch: 24)])
        try await TestWorker.run(app, configuration: configuration) { client, _ in
            var handles: [TaskHandle<JSONValue>] = []
            for _ in 0..<12 {
                handles.append(try await client.send("slow", args: [], queue: "slow"))
                handles.append(try await client.send("fast", args: [], queue: "fast"))
            }
            for handle in handles { #expect(try await handle.result(timeout: .seconds(30)).status == .success) }
        }
        #expect(slow.maximum <= 2, "slow ran \(slow.maximum) at once")
        #expect(fast.maximum >= 3, "fast got only \(fast.maximum) slots")
    }
}
