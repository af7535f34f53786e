import AMQP
import Foundation
import Testing

/// A poison message on a quorum queue (#17 item 1): a task that crashes
/// the worker process each time it runs, among innocent tasks, with the
/// example worker restarted after every crash. Each crash returns every
/// delivery the process held and raises its `x-delivery-count`; the
/// worker runs a delivery whose count shows an earlier crash alone, so
/// later crashes raise only the poison's count and RabbitMQ's delivery
/// limit (the queue's policy) dead-letters it alone.
@Suite(
    .enabled(if: IntegrationEnvironment.enabled && IntegrationEnvironment.managementURL != nil, "needs the management API for the queue policy"),
    .serialized, .timeLimit(.minutes(5)))
struct PoisonMessageFaultTests {
    @Test func aPoisonMessageIsDeadLetteredAloneOnAQuorumQueue() async throws {
        try await run(secondQueue: false)
    }

    /// The same with a second quorum queue of the same worker holding half
    /// of the innocent tasks: a crash returns both queues' deliveries, so a
    /// suspect pauses both.
    @Test func aPoisonMessageSparesTheOtherQueuesTasksToo() async throws {
        try await run(secondQueue: true)
    }

    private func run(secondQueue: Bool) async throws {
        try await TestScope.run("poisonq") { scope in
            let limit = 2
            try await scope.applyQueuePolicy(queueType: "quorum", deliveryLimit: limit)
            let other = scope.queue + "-other"
            if secondQueue {
                try await scope.applyQueuePolicy(other, queueType: "quorum", deliveryLimit: limit)
                scope.deleteAtEnd(other)
                scope.deleteAtEnd(other + ".dlq")
            }
            let replies = scope.queue + ".results"
            scope.deleteAtEnd(replies)
            let setup = try await AMQPConnection.connect(IntegrationEnvironment.configuration)
            try await setup.openChannel().declareQueue(replies, durable: true)
            await setup.close()
            let runLog = NSTemporaryDirectory() + "qtasks-runlog-\(UUID().uuidString).txt"
            defer { try? FileManager.default.removeItem(atPath: runLog) }
            let arguments = [
                "--url", IntegrationEnvironment.url, "--queue", scope.queue, "--queue-type", "quorum",
                "--delivery-limit", String(limit), "--concurrency", "4", "--log-level", "info",
            ] + (secondQueue ? ["--queue", other] : [])
            let environment = ["QTASKS_EXAMPLE_CRASH_TASK": "1", "QTASKS_EXAMPLE_RUN_LOG": runLog]
            // The first worker declares the queue (quorum); then the tasks.
            var worker = try scope.spawn(IntegrationEnvironment.workerExecutable, arguments, environment: environment)
            try await worker.waitUntilConsuming()
            let collector = ResultCollector(configuration: IntegrationEnvironment.configuration, queue: replies)
            defer { collector.stop() }
            let publisher = TaskPublisher(configuration: IntegrationEnvironment.configuration)
            let poison = UUID().uuidString.lowercased()
            try await publisher.publish(#"{"uuid": "\#(poison)", "task_name": "crash"}"#, to: scope.queue, uuid: poison, replyTo: replies)
            var innocents: [String] = []
            for index in 0..<50 {
                let uuid = UUID().uuidString.lowercased()
                try await publisher.publish(
                    #"{"uuid": "\#(uuid)", "task_name": "add", "args": [\#(index), 1]}"#,
                    to: secondQueue && index % 2 == 1 ? other : scope.queue, uuid: uuid, replyTo: replies)
                innocents.append(uuid)
            }
            await publisher.close()

            // Restarted after each crash, as a supervisor would, until every
            // innocent task has its result and the poison has gone.
            var crashes = 0
            var logs: [String] = []
            let deadline = ContinuousClock.now + .seconds(180)
            while true {
                let done = Set(collector.counts.keys).isSuperset(of: innocents)
                let queueInfo = try await scope.admin.queueInfo(scope.queue)
                var otherReady: UInt32 = 0
                if secondQueue { otherReady = try await scope.admin.queueInfo(other)?.messageCount ?? 0 }
                if done, queueInfo?.messageCount == 0, otherReady == 0, crashes > limit { break }
                if let ended = await worker.waitForExit(timeout: 0.5) {
                    if case .exited(0) = ended {} else { crashes += 1 }
                    logs.append(worker.standardErrorText)
                    guard crashes <= 10, ContinuousClock.now < deadline else { break }
                    worker = try scope.spawn(IntegrationEnvironment.workerExecutable, arguments, environment: environment)
                    try await worker.waitUntilConsuming()
                }
                guard ContinuousClock.now < deadline else { break }
            }
            // The dead letters, read back.
            var deadLettered: [String: Int] = [:]
            for deadLetterQueue in [scope.deadLetterQueue] + (secondQueue ? [other + ".dlq"] : []) {
                while let message = try await scope.admin.get(deadLetterQueue) {
                    let body = (try? JSONSerialization.jsonObject(with: Data(message.body))) as? [String: Any]
                    deadLettered[(body?["task_name"] as? String) ?? "?", default: 0] += 1
                }
            }
            let counts = collector.counts
            let innocentDeadLetters = deadLettered.filter { $0.key != "crash" }.values.reduce(0, +)
            let figures = RunFigures(
                scenario: "poison task on a quorum queue (delivery limit \(limit)), 50 innocent tasks\(secondQueue ? " (half on a second quorum queue)" : ""), worker restarted after each crash",
                sent: innocents, counts: counts,
                extra: "crashes \(crashes), dead-lettered \(deadLettered.values.reduce(0, +)) (innocent \(innocentDeadLetters), poison \(deadLettered["crash"] ?? 0)), suspects run alone \(logs.joined().components(separatedBy: "running it alone").count - 1 + worker.standardErrorText.components(separatedBy: "running it alone").count - 1)"
            )
            figures.print()
            #expect(innocentDeadLetters == 0, "innocent tasks dead-lettered: \(deadLettered)")
            #expect(figures.lost == 0, "\(worker.stderrTail())")
            #expect(deadLettered["crash"] == 1, "the poison was not dead-lettered: \(deadLettered), crashes \(crashes)")
            // The poison ran limit + 1 times (each a crash), alone after
            // the first.
            #expect(crashes == limit + 1)
        }
    }
}
