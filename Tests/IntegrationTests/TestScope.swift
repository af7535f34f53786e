import AMQP
import Foundation
import Synchronization
import Testing

/// What one integration test owns: its queue names (unique, so tests run in
/// parallel without seeing each other's messages), an admin connection, the
/// processes it started. ``run(_:_:)`` always stops those processes and
/// deletes those queues, whether the test passed, failed or threw.
final class TestScope: Sendable {
    /// The task queue; the worker declares it and `<queue>.dlq`.
    let queue: String
    /// An exclusive queue for results, declared by the test.
    let replyQueue: String
    let admin: BrokerAdmin
    private let processes = Mutex<[ChildProcess]>([])
    private let otherQueues = Mutex<[String]>([])

    var deadLetterQueue: String { queue + ".dlq" }

    private init(queue: String, admin: BrokerAdmin) {
        self.queue = queue
        self.replyQueue = queue + ".reply"
        self.admin = admin
    }

    static func run(_ what: String, _ body: (TestScope) async throws -> Void) async throws {
        let admin = try await BrokerAdmin.connect()
        let scope = TestScope(queue: IntegrationEnvironment.uniqueQueue(what), admin: admin)
        do {
            try await admin.declareReplyQueue(scope.replyQueue)
            try await body(scope)
        } catch {
            await scope.cleanUpUncancelled()
            throw error
        }
        await scope.cleanUpUncancelled()
    }

    /// Cleans up in a task of its own: a test cancelled by its time limit
    /// still stops its processes with the usual grace, not in a busy loop.
    private func cleanUpUncancelled() async {
        await Task { await self.cleanUp() }.value
    }

    /// Stops every process (SIGTERM, then SIGKILL), deletes the queues,
    /// closes the admin connection.
    private func cleanUp() async {
        let started = processes.withLock { $0 }
        for process in started {
            await process.stop(grace: 5)
        }
        await admin.deleteQueues([queue, deadLetterQueue, replyQueue] + otherQueues.withLock { $0 })
        await admin.close()
    }

    /// Deletes `queue` (and nothing else) at the end of the test too.
    func deleteAtEnd(_ queue: String) {
        otherQueues.withLock { $0.append(queue) }
    }

    /// Starts a process that ``run(_:_:)`` stops at the end.
    func spawn(_ executable: String, _ arguments: [String], environment: [String: String] = [:]) throws -> ChildProcess {
        let process = try ChildProcess(executable, arguments, environment: environment)
        processes.withLock { $0.append(process) }
        return process
    }

    /// Starts a `qtasks-example` worker on this test's queue and waits until
    /// it consumes (its "worker started" log line comes after consume-ok).
    func startWorker(
        concurrency: Int = 4, prefetch: Int? = nil, maxMessageBytes: Int? = nil, shutdownGrace: Double? = nil,
        queues: [String]? = nil
    ) async throws -> ChildProcess {
        var arguments = ["--url", IntegrationEnvironment.url, "--concurrency", String(concurrency), "--log-level", "info"]
        for queue in queues ?? [queue] { arguments += ["--queue", queue] }
        if let prefetch { arguments += ["--prefetch", String(prefetch)] }
        if let maxMessageBytes { arguments += ["--max-message-bytes", String(maxMessageBytes)] }
        if let shutdownGrace { arguments += ["--shutdown-grace", String(shutdownGrace)] }
        let worker = try spawn(IntegrationEnvironment.workerExecutable, arguments)
        try await worker.waitUntilConsuming()
        return worker
    }

    /// Runs `qtasks` (the CLI) to its end, with `--url` unless given.
    func runCLI(_ arguments: [String], url: String? = IntegrationEnvironment.url, timeout: Double = 30) async throws
        -> CompletedProcess
    {
        var full = arguments
        if let url { full += ["--url", url] }
        return try await ChildProcess.run(IntegrationEnvironment.cliExecutable, full, timeout: timeout)
    }

    /// Publishes a task body as a foreign producer would, with `reply_to` =
    /// ``replyQueue``.
    func publishTask(
        _ body: [UInt8], correlationID: String?, messageID: String? = nil, to queue: String? = nil
    ) async throws {
        try await admin.publish(
            body, to: queue ?? self.queue,
            properties: AMQPProperties(
                contentType: "application/json", deliveryMode: AMQPProperties.persistentDeliveryMode,
                correlationID: correlationID, replyTo: replyQueue, messageID: messageID))
    }

    func publishTask(_ json: String, correlationID: String?, messageID: String? = nil) async throws {
        try await publishTask(Array(json.utf8), correlationID: correlationID, messageID: messageID)
    }

    /// The next result on ``replyQueue``.
    func nextReply(timeout: Double = 20, _ what: String) async throws -> ResultMessage {
        try ResultMessage(try await admin.waitForMessage(in: replyQueue, timeout: timeout, what))
    }

    /// Stops `worker` with SIGTERM and expects a clean exit (status 0)
    /// within `timeout` seconds.
    func stopGracefully(_ worker: ChildProcess, timeout: Double = 20, sourceLocation: SourceLocation = #_sourceLocation)
        async
    {
        worker.signal(SIGTERM)
        let ended = await worker.waitForExit(timeout: timeout)
        #expect(ended == .exited(0), "worker after SIGTERM:\n\(worker.stderrTail())", sourceLocation: sourceLocation)
    }
}
