import AMQP
import Foundation
import TestSupport
import Synchronization
import Testing

/// Issue 17, item 2: a result larger than the broker's `max_message_size`.
///
/// A private node (`QTASKS_PRIVATE_RABBITMQ_PORT` + 7, by default 5700)
/// with `max_message_size = 1048576`; the worker's own result limit left
/// at its default (8 MiB), so the broker is the one that refuses. One
/// `echo` task whose message fits but whose result does not, among small
/// tasks sent around it: the big one gets one error result saying the
/// result was too large and one dead letter, and runs once; every small
/// task gets its result and runs once (a refusal closes the shared
/// publishing channel: the publishes it failed are sent again, not
/// requeued and rerun).
@Suite(
    .enabled(if: IntegrationEnvironment.enabled && PrivateRabbitMQ.available, "needs RabbitMQ installed (deploy/install-deps.sh)"),
    .serialized, .timeLimit(.minutes(5)))
struct OversizeResultFaultTests {
    static let port = PrivateRabbitMQ.port(offset: 7)
    static let brokerLimit = 1_048_576

    @Test func resultOverTheBrokersMaxMessageSizeIsAnErrorResultAndADeadLetter() async throws {
        let node = try await PrivateRabbitMQ.start(
            port: Self.port, extraConfiguration: "max_message_size = \(Self.brokerLimit)")
        var workerProcess: ChildProcess?
        do {
            try await runScenario(node) { workerProcess = $0 }
        } catch {
            if let workerProcess { await workerProcess.stop(grace: 5) }
            await node.stop()
            throw error
        }
        if let workerProcess { await workerProcess.stop(grace: 5) }
        await node.stop()
    }

    private func runScenario(_ node: PrivateRabbitMQ, started: (ChildProcess) -> Void) async throws {
        let queue = IntegrationEnvironment.uniqueQueue("oversize")
        let replies = queue + ".results"
        let configuration = node.configuration
        let connection = try await AMQPConnection.connect(configuration)
        defer { Task { await connection.close() } }
        try await connection.openChannel().declareQueue(replies, durable: true)
        let collector = ResultCollector(configuration: configuration, queue: replies)
        defer { collector.stop() }
        let worker = try await FaultWorker.start(
            ["--concurrency", "20", "--max-message-bytes", "2000000"], url: node.url, queues: [queue]
        ) { executable, arguments, environment in
            try ChildProcess(executable, arguments, environment: environment)
        }
        started(worker)

        // The big task's message is 16 bytes under the broker's limit; its
        // result (the same string, wrapped in the result's fields) is over.
        let big = UUID().uuidString.lowercased()
        let prefix = #"{"uuid": "\#(big)", "task_name": "echo", "args": [""#
        let suffix = #""]}"#
        let padding = Self.brokerLimit - 16 - prefix.utf8.count - suffix.utf8.count
        let bigBody = prefix + String(repeating: "x", count: padding) + suffix
        #expect(bigBody.utf8.count == Self.brokerLimit - 16)

        let small = (0..<1000).map { _ in UUID().uuidString.lowercased() }
        let publisher = TaskPublisher(configuration: configuration)
        // Small tasks on either side of the big one (200 before it in the
        // queue, 800 after), so that their results are in flight on the
        // worker's publishing channel when the broker refuses the big
        // result: 1,000 x 50 ms over 20 slots is 2.5 s of work.
        func publishSmall(_ range: Range<Int>) async throws {
            try await withThrowingTaskGroup(of: Void.self) { group in
                for chunk in stride(from: range.lowerBound, to: range.upperBound, by: 50) {
                    group.addTask {
                        for uuid in small[chunk..<min(chunk + 50, range.upperBound)] {
                            try await publisher.publish(
                                #"{"uuid": "\#(uuid)", "task_name": "sleep", "args": [0.05]}"#, to: queue, uuid: uuid,
                                replyTo: replies)
                        }
                    }
                }
                try await group.waitForAll()
            }
        }
        try await publishSmall(0..<200)
        try await publisher.publish(bigBody, to: queue, uuid: big, replyTo: replies)
        try await publishSmall(200..<small.count)
        await publisher.close()

        let everyone = small + [big]
        do {
            try await waitUntil("every task's result (have \(collector.counts.count) of \(everyone.count))", timeout: 60) {
                if let ended = worker.exitStatus { throw ChildProcessError("the worker exited (\(ended)):\n\(worker.stderrTail())") }
                return Set(collector.counts.keys).isSuperset(of: everyone)
            }
        } catch let error as TimeoutError {
            // Figures below say what is missing.
            Issue.record("\(error)")
        }
        // A rerun of the big task (the bug: about once a second) would show.
        try await Task.sleep(for: .seconds(3))

        let log = worker.standardErrorText.split(separator: "\n")
        /// Runs of a task: one line per run that ended (settled, or its
        /// publish failed and it was requeued).
        func runs(_ uuid: String) -> Int {
            log.count { line in
                line.contains("uuid=\(uuid)")
                    && (line.contains("task succeeded") || line.contains("task failed") || line.contains("publish failed"))
            }
        }
        let bigRuns = runs(big)
        let smallRuns = small.map(runs)
        let rerunSmall = smallRuns.count { $0 > 1 }
        let channelRetries = log.count { $0.contains("sending it again on a new channel") }
        let requeues = log.count { $0.contains("delivery requeued") }

        // The dead-letter queue: one message, the big task, saying why.
        let channel = try await connection.openChannel()
        let deadLetterQueue = queue + ".dlq"
        let deadLetters = Int(try await channel.declareQueue(deadLetterQueue, passive: true).messageCount)
        let deadLetter = try await channel.get(queue: deadLetterQueue, noAck: false, maxBodySize: 2_000_000)

        let figures = RunFigures(
            scenario: "oversize result (max_message_size \(Self.brokerLimit))", sent: everyone, counts: collector.counts,
            extra: "big task runs \(bigRuns), small tasks run more than once \(rerunSmall), dead letters \(deadLetters), "
                + "publishes sent again on a new channel \(channelRetries), deliveries requeued \(requeues)")
        figures.print()

        let statuses = collector.statuses
        #expect(figures.lost == 0)
        #expect(collector.counts[big] == 1, "exactly one result for the big task")
        #expect(statuses[big] == "error")
        #expect(bigRuns == 1, "\(worker.stderrTail())")
        #expect(deadLetters == 1)
        #expect(deadLetter?.properties.messageID == big)
        #expect(deadLetter?.properties.headers?["x-qtasks-error-type"] == .string("ResultTooLargeError"))
        if case .string(let message)? = deadLetter?.properties.headers?["x-qtasks-error-message"] {
            #expect(message.contains("exceeds the broker's maximum message size of \(Self.brokerLimit) bytes"), "\(message)")
        } else {
            Issue.record("no x-qtasks-error-message on the dead letter")
        }
        #expect(small.allSatisfy { statuses[$0] == "success" })
        #expect(rerunSmall == 0)
        #expect(smallRuns.allSatisfy { $0 == 1 })
        #expect(requeues == 0, "\(worker.stderrTail())")
        #expect(worker.isRunning)
    }
}
