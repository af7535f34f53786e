import AMQP
import Foundation
import Testing
import TestSupport

/// One of a worker's queues taken away (#17 item 3): each queue is consumed
/// on its own channel, so the others keep being served, only the lost
/// queue's deliveries are affected, and the queue is consumed again on its
/// own once it can be. Against the shared broker, with the example worker
/// consuming two queues of the test's own.
@Suite(.enabled(if: IntegrationEnvironment.enabled), .serialized, .timeLimit(.minutes(3)))
struct QueueIsolationFaultTests {
    /// The reproduction: another client deletes `other` and declares it
    /// again as its exclusive queue (405 RESOURCE_LOCKED for everyone
    /// else) while tasks flow to `default`.
    @Test func aQueueLockedByAnotherConnectionDoesNotStopTheOthers() async throws {
        let served = IntegrationEnvironment.uniqueQueue("isolation-default")
        let other = IntegrationEnvironment.uniqueQueue("isolation-other")
        let replies = served + ".results"
        let run = try await IsolationRun.start(queues: [served, other], replies: replies)
        let thief = try await AMQPConnection.connect(IntegrationEnvironment.configuration)
        do {
            // Taken away: the worker's consumer of `other` is cancelled by
            // the broker, and every declaration of it is refused with 405
            // while this connection lives.
            let channel = try await thief.openChannel()
            try await channel.deleteQueue(other)
            try await channel.declareQueue(other, durable: false, exclusive: true)
            try await waitUntil("the broker to cancel the worker's consumer of \(other)", timeout: 30) {
                run.worker.standardErrorText.contains("consumer cancelled by broker")
            }
            // Tasks to `default` meanwhile: all served.
            let sent = try await run.publish(20, task: #""task_name": "add", "args": [1, 2]"#, to: served)
            try await waitUntil("the results of \(served)'s tasks while \(other) is locked", timeout: 30) {
                Set(run.collector.counts.keys).isSuperset(of: sent)
            }
            // Still locked: the worker's own attempts are refused (405).
            try await waitUntil("the worker's declaration of \(other) to be refused with 405", timeout: 30) {
                run.worker.standardErrorText.contains("RESOURCE_LOCKED")
            }
            let log = run.worker.standardErrorText
            let unavailable = log.components(separatedBy: "queue unavailable").count - 1
            let retries = log.components(separatedBy: "queue still unavailable").count - 1
            RunFigures(
                scenario: "queue '\(other)' locked by another connection's exclusive queue, tasks to '\(served)'",
                sent: sent, counts: run.collector.counts,
                extra: "'unavailable' log lines \(unavailable), quiet retries \(retries), executions \(run.executions().count)"
            ).print()
            #expect(run.collector.counts.values.allSatisfy { $0 == 1 })
            // One line per change of state or reason (the consumer
            // cancelled, then 405), not one per attempt; no reconnect of
            // the whole worker.
            #expect(unavailable <= 3, "\(run.worker.stderrTail())")
            #expect(!log.contains("connection lost; reconnecting"), "\(run.worker.stderrTail())")
            // The lock goes with its connection: the queue is declared and
            // consumed again.
            await thief.close()
            try await waitUntil("\(other) to be consumed again", timeout: 40) {
                try await run.consumers(of: other) == 1
            }
            #expect(run.worker.standardErrorText.contains("queue available again"), "\(run.worker.stderrTail())")
            let late = try await run.publish(5, task: #""task_name": "add", "args": [2, 3]"#, to: other)
            try await waitUntil("the results of \(other)'s tasks", timeout: 30) {
                Set(run.collector.counts.keys).isSuperset(of: late)
            }
        } catch {
            await thief.close()
            await run.stop()
            throw error
        }
        await run.stop()
    }

    /// A plain deletion of one queue while tasks of both run: the other
    /// queue's running tasks finish and are settled once (not cancelled,
    /// not run again); the deleted queue's deliveries are left unsettled
    /// (nothing published for them: they were deleted with their queue);
    /// the queue is declared again and consumed.
    @Test func deletingOneQueueAffectsOnlyItsOwnTasks() async throws {
        let kept = IntegrationEnvironment.uniqueQueue("isolation-kept")
        let deleted = IntegrationEnvironment.uniqueQueue("isolation-deleted")
        let replies = kept + ".results"
        let run = try await IsolationRun.start(queues: [kept, deleted], replies: replies, concurrency: 4)
        do {
            let keptTasks = try await run.publish(2, task: #""task_name": "sleep", "args": [3]"#, to: kept)
            let deletedTasks = try await run.publish(2, task: #""task_name": "sleep", "args": [3]"#, to: deleted)
            try await waitUntil("the four tasks to start", timeout: 30) { run.executions().count >= 4 }
            let admin = try await AMQPConnection.connect(IntegrationEnvironment.configuration)
            try await admin.openChannel().deleteQueue(deleted)
            await admin.close()
            try await waitUntil("the results of \(kept)'s tasks", timeout: 30) {
                Set(run.collector.counts.keys).isSuperset(of: keptTasks)
            }
            try await waitUntil("\(deleted) to be declared and consumed again", timeout: 40) {
                try await run.consumers(of: deleted) == 1
            }
            let late = try await run.publish(3, task: #""task_name": "add", "args": [1, 1]"#, to: deleted)
            try await waitUntil("the results of the re-declared \(deleted)'s tasks", timeout: 30) {
                Set(run.collector.counts.keys).isSuperset(of: late)
            }
            let executions = run.executions()
            let keptRuns = executions.filter { line in keptTasks.contains { line.contains($0) } }.count
            let counts = run.collector.counts
            RunFigures(
                scenario: "queue '\(deleted)' deleted under 2 running tasks of each queue",
                sent: keptTasks + deletedTasks + late, counts: counts,
                extra: "executions of '\(kept)' \(keptRuns) (of 2), results for the deleted queue's tasks \(deletedTasks.filter { counts[$0] != nil }.count) (of 2), after re-declaration \(late.filter { counts[$0] != nil }.count) (of 3)"
            ).print()
            // Not cancelled and run again: once each, one result each.
            #expect(keptRuns == 2, "\(executions)")
            #expect(keptTasks.allSatisfy { counts[$0] == 1 })
            #expect(run.collector.statuses.filter { keptTasks.contains($0.key) }.values.allSatisfy { $0 == "success" })
            let log = run.worker.standardErrorText
            #expect(!log.contains("connection lost; reconnecting"), "\(run.worker.stderrTail())")
            #expect(!log.contains("cancelling running tasks"), "\(run.worker.stderrTail())")
        } catch {
            await run.stop()
            throw error
        }
        await run.stop()
    }
}

/// The same lock met by a reconnect: the worker's consumer connection is
/// closed while `other` is locked, and consuming again must not wait for
/// `other`. On a node of the test's own (closing connections by name on the
/// shared broker would close other tests' workers too).
@Suite(
    .enabled(if: IntegrationEnvironment.enabled && PrivateRabbitMQ.available, "needs RabbitMQ installed (deploy/install-deps.sh)"),
    .serialized, .timeLimit(.minutes(3)))
struct QueueIsolationReconnectFaultTests {
    static let port = PrivateRabbitMQ.port(offset: 12)

    @Test func aReconnectDoesNotWaitForALockedQueue() async throws {
        let node = try await PrivateRabbitMQ.start(port: Self.port)
        let served = IntegrationEnvironment.uniqueQueue("isolation-default")
        let other = IntegrationEnvironment.uniqueQueue("isolation-other")
        let replies = served + ".results"
        var run: IsolationRun?
        var thief: AMQPConnection?
        do {
            let started = try await IsolationRun.start(queues: [served, other], replies: replies, url: node.url, configuration: node.configuration)
            run = started
            let locking = try await AMQPConnection.connect(node.configuration)
            thief = locking
            let channel = try await locking.openChannel()
            try await channel.deleteQueue(other)
            try await channel.declareQueue(other, durable: false, exclusive: true)
            try await waitUntil("the broker to cancel the worker's consumer of \(other)", timeout: 30) {
                started.worker.standardErrorText.contains("consumer cancelled by broker")
            }
            let closed = try await node.closeConnections(named: "qtasks consumer", reason: "queue isolation test")
            #expect(closed == 1)
            let sent = try await started.publish(20, task: #""task_name": "add", "args": [1, 2]"#, to: served)
            try await waitUntil("the results of \(served)'s tasks after the reconnect, \(other) still locked", timeout: 30) {
                Set(started.collector.counts.keys).isSuperset(of: sent)
            }
            let log = started.worker.standardErrorText
            RunFigures(
                scenario: "consumer connection closed while '\(other)' is locked by another connection, tasks to '\(served)'",
                sent: sent, counts: started.collector.counts,
                extra: "reconnected \(log.contains("reconnected: consuming again")), 'unavailable' log lines \(log.components(separatedBy: "queue unavailable").count - 1)"
            ).print()
            #expect(log.contains("reconnected: consuming again"), "\(started.worker.stderrTail())")
            #expect(started.collector.counts.values.allSatisfy { $0 == 1 })
        } catch {
            await thief?.close()
            await run?.stop()
            await node.stop()
            throw error
        }
        await thief?.close()
        await run?.stop()
        await node.stop()
    }
}

/// An example worker on some queues, its run log, a result collector and
/// a publisher.
private struct IsolationRun {
    let worker: ChildProcess
    let collector: ResultCollector
    let publisher: TaskPublisher
    let runLog: String
    let queues: [String]
    let replies: String
    let configuration: AMQPConfiguration

    static func start(
        queues: [String], replies: String, concurrency: Int = 2, url: String = IntegrationEnvironment.url,
        configuration: AMQPConfiguration = IntegrationEnvironment.configuration
    ) async throws -> IsolationRun {
        let runLog = NSTemporaryDirectory() + "qtasks-runlog-\(UUID().uuidString).txt"
        var arguments = ["--url", url, "--concurrency", "\(concurrency)", "--log-level", "info"]
        for queue in queues { arguments += ["--queue", queue] }
        let worker = try ChildProcess(
            IntegrationEnvironment.workerExecutable, arguments, environment: ["QTASKS_EXAMPLE_RUN_LOG": runLog])
        do {
            try await worker.waitUntilConsuming()
            let setup = try await AMQPConnection.connect(configuration)
            try await setup.openChannel().declareQueue(replies, durable: true)
            await setup.close()
        } catch {
            await worker.stop(grace: 5)
            throw error
        }
        return IsolationRun(
            worker: worker, collector: ResultCollector(configuration: configuration, queue: replies),
            publisher: TaskPublisher(configuration: configuration), runLog: runLog, queues: queues,
            replies: replies, configuration: configuration)
    }

    /// Publishes `count` tasks (`fields`: the body's fields but the uuid);
    /// returns their uuids.
    func publish(_ count: Int, task fields: String, to queue: String) async throws -> [String] {
        var uuids: [String] = []
        for _ in 0..<count {
            let uuid = UUID().uuidString.lowercased()
            try await publisher.publish(#"{"uuid": "\#(uuid)", \#(fields)}"#, to: queue, uuid: uuid, replyTo: replies)
            uuids.append(uuid)
        }
        return uuids
    }

    /// The consumers of `queue` (nil while it does not exist), through a
    /// passive declaration.
    func consumers(of queue: String) async throws -> Int? {
        let connection = try await AMQPConnection.connect(configuration)
        defer { Task { await connection.close() } }
        guard let info = try? await connection.openChannel().declareQueue(queue, passive: true) else { return nil }
        return Int(info.consumerCount)
    }

    /// The run log's `start` lines: one per execution.
    func executions() -> [String] {
        ((try? String(contentsOfFile: runLog, encoding: .utf8)) ?? "").split(whereSeparator: \.isNewline).map(String.init)
            .filter { $0.hasSuffix(" start") }
    }

    func stop() async {
        collector.stop()
        await publisher.close()
        await worker.stop(grace: 5)
        try? FileManager.default.removeItem(atPath: runLog)
        if let admin = try? await AMQPConnection.connect(configuration) {
            for queue in queues + queues.map({ $0 + ".dlq" }) + [replies] {
                if let channel = try? await admin.openChannel() {
                    _ = try? await channel.deleteQueue(queue)
                    await channel.close()
                }
            }
            await admin.close()
        }
    }
}
