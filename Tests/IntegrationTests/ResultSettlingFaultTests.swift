import AMQP
import Foundation
import Synchronization
import Testing

/// A task with nothing but its result to send frees its concurrency slot
/// once the result is published; its delivery is acked on the publishing
/// connection's thread when the broker confirms the result. These check
/// what that must not change, against the real broker and worker: a result
/// nobody can receive still settles its delivery, and a graceful shutdown
/// acks every delivery whose result was confirmed.
@Suite(.enabled(if: IntegrationEnvironment.enabled, "no RabbitMQ reachable at QTASKS_URL; deploy/test.sh starts one"),
       .timeLimit(.minutes(5)))
struct ResultSettlingFaultTests {
    /// `reply_to` naming no queue: the result is returned by the broker
    /// (mandatory), logged as dropped, and the delivery acknowledged: the
    /// task runs once and is not redelivered.
    @Test func aResultForAReplyQueueThatDoesNotExistIsDroppedAndItsDeliveryAcked() async throws {
        try await TestScope.run("reply-nowhere") { scope in
            let log = NSTemporaryDirectory() + "qtasks-runlog-\(UUID().uuidString).txt"
            defer { try? FileManager.default.removeItem(atPath: log) }
            let worker = try scope.spawn(
                IntegrationEnvironment.workerExecutable,
                ["--url", IntegrationEnvironment.url, "--queue", scope.queue, "--log-level", "info"],
                environment: ["QTASKS_EXAMPLE_RUN_LOG": log])
            try await worker.waitUntilConsuming()
            let uuid = UUID().uuidString.lowercased()
            try await scope.admin.publish(
                Array(#"{"uuid": "\#(uuid)", "task_name": "add", "args": [2, 3]}"#.utf8), to: scope.queue,
                properties: AMQPProperties(
                    contentType: "application/json", deliveryMode: AMQPProperties.persistentDeliveryMode,
                    correlationID: uuid, replyTo: "qtasks-test-nowhere-\(uuid)"))
            try await waitUntil("the dropped result's warning", timeout: 30) {
                worker.standardErrorText.contains("result dropped: no queue named by its reply_to")
            }
            await scope.stopGracefully(worker)
            let runs = ((try? String(contentsOfFile: log, encoding: .utf8)) ?? "").split(whereSeparator: \.isNewline)
                .filter { $0.hasSuffix(" end") }
            #expect(runs.count == 1, "runs: \(runs)")
            #expect(try await scope.admin.queueInfo(scope.queue)?.messageCount == 0, "acked, not requeued")
        }
    }

    /// 3,000 tasks with results; SIGTERM when a sixth of the results are
    /// in, then a second worker drains the rest. Every task runs to its
    /// end exactly once: a delivery whose result was confirmed was acked
    /// before the first worker's connection closed (or its result was not
    /// confirmed and it ran once, later).
    @Test func aGracefulShutdownAcksEveryDeliveryWhoseResultWasConfirmed() async throws {
        try await TestScope.run("settle-shutdown") { scope in try await shutdownUnderResults(scope) }
    }

    private func shutdownUnderResults(_ scope: TestScope) async throws {
        let log = NSTemporaryDirectory() + "qtasks-runlog-\(UUID().uuidString).txt"
        defer { try? FileManager.default.removeItem(atPath: log) }
        let replies = scope.queue + ".results"
        scope.deleteAtEnd(replies)
        let setup = try await AMQPConnection.connect(IntegrationEnvironment.configuration)
        try await setup.openChannel().declareQueue(replies, durable: true)
        await setup.close()
        let collector = ResultCollector(configuration: IntegrationEnvironment.configuration, queue: replies)
        defer { collector.stop() }
        let publisher = TaskPublisher(configuration: IntegrationEnvironment.configuration)
        let uuids = (0..<3000).map { _ in UUID().uuidString.lowercased() }
        let arguments = ["--url", IntegrationEnvironment.url, "--queue", scope.queue, "--concurrency", "10", "--log-level", "info"]
        let first = try scope.spawn(IntegrationEnvironment.workerExecutable, arguments, environment: ["QTASKS_EXAMPLE_RUN_LOG": log])
        try await first.waitUntilConsuming()
        for uuid in uuids {
            try await publisher.publish(#"{"uuid": "\#(uuid)", "task_name": "add", "args": [1, 2]}"#, to: scope.queue, uuid: uuid, replyTo: replies)
        }
        await publisher.close()
        try await waitUntil("500 results", timeout: 60) { collector.counts.count >= 500 }
        await scope.stopGracefully(first, timeout: 30)
        let second = try scope.spawn(IntegrationEnvironment.workerExecutable, arguments, environment: ["QTASKS_EXAMPLE_RUN_LOG": log])
        try await second.waitUntilConsuming()
        try await waitUntil("every task's result", timeout: 120) { Set(collector.counts.keys).isSuperset(of: uuids) }
        await scope.stopGracefully(second)
        let ends = ((try? String(contentsOfFile: log, encoding: .utf8)) ?? "").split(whereSeparator: \.isNewline)
            .filter { $0.hasSuffix(" end") }
            .compactMap { $0.split(separator: " ").dropFirst().first.map(String.init) }
        var runs: [String: Int] = [:]
        for uuid in ends { runs[uuid, default: 0] += 1 }
        let twice = runs.filter { $0.value > 1 }
        print("fault-suite graceful shutdown under 3,000 results: ran \(ends.count), unique \(runs.count), ran twice \(twice.count), results \(collector.counts.values.reduce(0, +))")
        #expect(runs.count == 3000)
        #expect(twice.isEmpty, "ran twice: \(twice.keys.prefix(5))")
    }
}
