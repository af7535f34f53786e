import AMQP
import Foundation
import TestSupport
import Testing

/// Issue 17, item 5: a task longer than RabbitMQ's `consumer_timeout`.
///
/// A private node (`QTASKS_PRIVATE_RABBITMQ_PORT` + 9) with
/// `consumer_timeout = 10000` (10 s). RabbitMQ checks the timeout at each
/// channel tick, every 60 s by default (`channel_tick_interval`), so in
/// production a delivery is closed on up to a minute after its timeout;
/// the node here ticks every second (set at run time with `rabbitmqctl
/// eval`) so that the broker, when it acts, acts within seconds.
///
/// Before the fix: every 10 s the broker closed the channel (406), the
/// task was cancelled, redelivered and run again, for ever, never
/// dead-lettered; the worker's `close-ok` got a `504 CHANNEL_ERROR` that
/// closed the whole consumer connection.
@Suite(
    .enabled(if: IntegrationEnvironment.enabled && PrivateRabbitMQ.available, "needs RabbitMQ installed (deploy/install-deps.sh)"),
    .serialized, .timeLimit(.minutes(4)))
struct ConsumerTimeoutFaultTests {
    static let port = PrivateRabbitMQ.port(offset: 9)

    /// One task's runs, from the example worker's run log.
    struct Runs {
        let lines: [String]
        func starts(_ uuid: String) -> Int { lines.count { $0.contains(" \(uuid) ") && $0.hasSuffix(" start") } }
    }

    private func withNode(_ body: (PrivateRabbitMQ) async throws -> Void) async throws {
        let node = try await PrivateRabbitMQ.start(port: Self.port, extraConfiguration: "consumer_timeout = 10000")
        do {
            try await node.ctl("eval", "application:set_env(rabbit, channel_tick_interval, 1000).")
            try await body(node)
        } catch {
            await node.stop()
            throw error
        }
        await node.stop()
    }

    private func startWorker(_ node: PrivateRabbitMQ, queues: [String], extra: [String], runLog: String) async throws -> ChildProcess {
        var arguments = ["--url", node.url, "--concurrency", "4", "--log-level", "info"]
        for queue in queues { arguments += ["--queue", queue] }
        let worker = try ChildProcess(
            IntegrationEnvironment.workerExecutable, arguments + extra, environment: ["QTASKS_EXAMPLE_RUN_LOG": runLog])
        try await worker.waitUntilConsuming()
        return worker
    }

    private func runs(_ path: String) -> Runs {
        Runs(lines: ((try? String(contentsOfFile: path, encoding: .utf8)) ?? "").split(whereSeparator: \.isNewline).map(String.init))
    }

    /// The dead letters of `queue`: count, and the first one's error type and message.
    private func deadLetters(_ queue: String, on connection: AMQPConnection) async throws -> (count: Int, type: String?, message: String?) {
        let channel = try await connection.openChannel()
        defer { Task { await channel.close() } }
        let count = Int(try await channel.declareQueue(queue + ".dlq", passive: true).messageCount)
        let first = try await channel.get(queue: queue + ".dlq", noAck: false)
        func text(_ key: String) -> String? {
            if case .string(let value)? = first?.properties.headers?[key] { return value }
            return nil
        }
        return (count, text("x-qtasks-error-type"), text("x-qtasks-error-message"))
    }

    /// `--consumer-timeout 10`: a `sleep 20` is stopped 9 s after each
    /// delivery, retried once (`--max-attempts 2`) and dead-lettered with
    /// ConsumerTimeoutError; meanwhile a `long_sleep 15` (acknowledged on
    /// start) on another queue of the same worker runs once to its result.
    /// The broker never closes a channel.
    @Test func aTaskPastTheConsumerTimeoutIsDeadLetteredAndALongTaskAcknowledgedOnStartFinishes() async throws {
        try await withNode { node in
            let log = NSTemporaryDirectory() + "qtasks-runlog-\(UUID().uuidString).txt"
            defer { try? FileManager.default.removeItem(atPath: log) }
            let queue = IntegrationEnvironment.uniqueQueue("ctimeout")
            let longQueue = queue + "-long"
            let replies = queue + ".results"
            let worker = try await startWorker(
                node, queues: [queue, longQueue], extra: ["--consumer-timeout", "10", "--max-attempts", "2", "--retry-delay", "0.5"],
                runLog: log)
            let connection = try await AMQPConnection.connect(node.configuration)
            defer { Task { await connection.close() } }
            try await connection.openChannel().declareQueue(replies, durable: true)
            let collector = ResultCollector(configuration: node.configuration, queue: replies)
            defer { collector.stop() }
            let publisher = TaskPublisher(configuration: node.configuration)
            let slow = UUID().uuidString.lowercased()
            let long = UUID().uuidString.lowercased()
            try await publisher.publish(#"{"uuid": "\#(slow)", "task_name": "sleep", "args": [20]}"#, to: queue, uuid: slow, replyTo: replies)
            try await publisher.publish(
                #"{"uuid": "\#(long)", "task_name": "long_sleep", "args": [15]}"#, to: longQueue, uuid: long, replyTo: replies)
            await publisher.close()

            do {
                try await waitUntil("both results", timeout: 90) {
                    if let ended = worker.exitStatus { throw ChildProcessError("the worker exited (\(ended)):\n\(worker.stderrTail())") }
                    return collector.counts[slow] != nil && collector.counts[long] != nil
                }
            } catch let error as TimeoutError {
                Issue.record("\(error)")
            }
            // A rerun (the bug: every 10 s) would show within a tick or two.
            try await Task.sleep(for: .seconds(3))
            let dead = try await deadLetters(queue, on: connection)
            let all = runs(log)
            let stderr = worker.standardErrorText
            let channelCloses = stderr.split(separator: "\n").count { $0.contains("channel closed by broker") }
            print(
                "fault-suite consumer_timeout 10 s, worker --consumer-timeout 10 --max-attempts 2: sleep 20 runs \(all.starts(slow)), "
                    + "results \(collector.counts[slow] ?? 0) (\(collector.statuses[slow] ?? "none")), dead letters \(dead.count) "
                    + "(\(dead.type ?? "-"): \(dead.message ?? "-")); long_sleep 15 (acknowledged on start) runs \(all.starts(long)), "
                    + "results \(collector.counts[long] ?? 0) (\(collector.statuses[long] ?? "none")); channels closed by the broker \(channelCloses)")
            #expect(all.starts(slow) == 2, "one run per attempt, then the dead-letter queue: \(all.lines)")
            #expect(collector.counts[slow] == 1)
            #expect(collector.statuses[slow] == "error")
            #expect(dead.count == 1)
            #expect(dead.type == "ConsumerTimeoutError")
            #expect(dead.message?.contains("consumer_timeout is 10 s") == true, "\(dead.message ?? "no message")")
            #expect(all.starts(long) == 1)
            #expect(collector.counts[long] == 1)
            #expect(collector.statuses[long] == "success")
            #expect(channelCloses == 0, "\(worker.stderrTail())")
            #expect(!stderr.contains("504"), "\(worker.stderrTail())")
            #expect(!stderr.contains("connection lost"), "\(worker.stderrTail())")
            #expect(worker.isRunning)
            await worker.stop(grace: 5)
        }
    }

    /// The issue's last finding: during a graceful shutdown (consumer
    /// cancelled, the task let finish) the broker closes the channel for
    /// `consumer_timeout` under the running task. The worker, told the
    /// broker has no timeout (`--consumer-timeout 0`) so that it does not
    /// stop the task itself, must then neither publish the result nor log
    /// `task succeeded`: the broker has requeued the message.
    @Test func aTaskWhoseChannelClosedDuringShutdownPublishesNothing() async throws {
        try await withNode { node in
            let log = NSTemporaryDirectory() + "qtasks-runlog-\(UUID().uuidString).txt"
            defer { try? FileManager.default.removeItem(atPath: log) }
            let queue = IntegrationEnvironment.uniqueQueue("ctshutdown")
            let replies = queue + ".results"
            let worker = try await startWorker(
                node, queues: [queue], extra: ["--consumer-timeout", "0", "--shutdown-grace", "60"], runLog: log)
            let connection = try await AMQPConnection.connect(node.configuration)
            defer { Task { await connection.close() } }
            try await connection.openChannel().declareQueue(replies, durable: true)
            let publisher = TaskPublisher(configuration: node.configuration)
            let slow = UUID().uuidString.lowercased()
            try await publisher.publish(#"{"uuid": "\#(slow)", "task_name": "sleep", "args": [14]}"#, to: queue, uuid: slow, replyTo: replies)
            await publisher.close()
            try await waitUntil("the task to start", timeout: 20) { runs(log).starts(slow) == 1 }
            worker.signal(SIGTERM)
            // The task runs to its end (14 s, within the grace period); the
            // broker closed its channel at about 10 s.
            let ended = await worker.waitForExit(timeout: 60)
            let stderr = worker.standardErrorText
            let channel = try await connection.openChannel()
            let results = Int(try await channel.declareQueue(replies, passive: true).messageCount)
            let back = Int(try await channel.declareQueue(queue, passive: true).messageCount)
            let lines = stderr.split(separator: "\n")
            let succeeded = lines.count { $0.contains("task succeeded") && $0.contains(slow) }
            print(
                "fault-suite consumer_timeout 10 s during a graceful shutdown (sleep 14, grace 60 s): results published \(results), "
                    + "'task succeeded' lines \(succeeded), messages back in the queue \(back), worker exit \(ended.map { "\($0)" } ?? "none")")
            #expect(ended == .exited(0), "\(worker.stderrTail())")
            #expect(stderr.contains("channel closed by broker"), "the broker did close the channel: \(worker.stderrTail())")
            #expect(results == 0, "\(worker.stderrTail())")
            #expect(succeeded == 0, "\(worker.stderrTail())")
            #expect(stderr.contains("task ended after its delivery's connection or channel closed"), "\(worker.stderrTail())")
            #expect(back == 1, "the broker requeued it")
        }
    }

    /// The worker left at RabbitMQ's default (30 min) on a broker at 10 s:
    /// the broker closes the channel once; the worker learns the broker's
    /// value from that close (`Timeout value used: 10000 ms`), sends no
    /// `close-ok` (RabbitMQ 3.10 would close the connection for it: 504),
    /// and stops the redelivered run in time: two runs, one dead letter.
    @Test func theWorkerLearnsTheBrokersTimeoutFromItsFirstCloseWithoutLosingTheConnection() async throws {
        try await withNode { node in
            let log = NSTemporaryDirectory() + "qtasks-runlog-\(UUID().uuidString).txt"
            defer { try? FileManager.default.removeItem(atPath: log) }
            let queue = IntegrationEnvironment.uniqueQueue("ctlearn")
            let replies = queue + ".results"
            let worker = try await startWorker(node, queues: [queue], extra: [], runLog: log)
            let connection = try await AMQPConnection.connect(node.configuration)
            defer { Task { await connection.close() } }
            try await connection.openChannel().declareQueue(replies, durable: true)
            let collector = ResultCollector(configuration: node.configuration, queue: replies)
            defer { collector.stop() }
            let publisher = TaskPublisher(configuration: node.configuration)
            let slow = UUID().uuidString.lowercased()
            try await publisher.publish(#"{"uuid": "\#(slow)", "task_name": "sleep", "args": [20]}"#, to: queue, uuid: slow, replyTo: replies)
            await publisher.close()

            do {
                try await waitUntil("the result", timeout: 90) {
                    if let ended = worker.exitStatus { throw ChildProcessError("the worker exited (\(ended)):\n\(worker.stderrTail())") }
                    return collector.counts[slow] != nil
                }
            } catch let error as TimeoutError {
                Issue.record("\(error)")
            }
            try await Task.sleep(for: .seconds(3))
            let dead = try await deadLetters(queue, on: connection)
            let all = runs(log)
            let stderr = worker.standardErrorText
            let channelCloses = stderr.split(separator: "\n").count { $0.contains("channel closed by broker") }
            print(
                "fault-suite consumer_timeout 10 s, worker at its default (1800 s): sleep 20 runs \(all.starts(slow)), "
                    + "results \(collector.counts[slow] ?? 0) (\(collector.statuses[slow] ?? "none")), dead letters \(dead.count) (\(dead.type ?? "-")), "
                    + "channels closed by the broker \(channelCloses), connection closed by the broker \(stderr.contains("AMQP connection closed by broker") ? "yes" : "no")")
            #expect(all.starts(slow) == 2, "\(all.lines)")
            #expect(collector.counts[slow] == 1)
            #expect(dead.count == 1)
            #expect(dead.type == "ConsumerTimeoutError")
            #expect(channelCloses == 1)
            #expect(stderr.contains("tasks are now stopped before its timeout"), "\(worker.stderrTail())")
            #expect(!stderr.contains("504"), "\(worker.stderrTail())")
            #expect(!stderr.contains("AMQP connection closed by broker"), "\(worker.stderrTail())")
            #expect(worker.isRunning)
            await worker.stop(grace: 5)
        }
    }
}
