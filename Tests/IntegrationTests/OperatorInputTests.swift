import AMQP
import Foundation
import QTasks
import QTasksRabbitMQ
import Testing

/// Issue #17, item 8: operator input. Queue names, broker URLs and numeric
/// limits are checked before anything connects: exit 64 with a message
/// (the password never in it), nothing declared, no URL read as a default,
/// no value silently clamped.
@Suite(.enabled(if: IntegrationEnvironment.enabled, "no RabbitMQ reachable at QTASKS_URL; deploy/test.sh starts one"),
       .timeLimit(.minutes(3)))
struct OperatorInputTests {
    // MARK: Queue names

    /// `--queue ''` used to declare a durable `.dlq` and a server-named
    /// `amq.gen-…` queue, then exit 1 with a broker 404.
    @Test func anEmptyQueueNameExits64AndDeclaresNothing() async throws {
        try await TestScope.run("empty-queue") { scope in
            await scope.admin.deleteQueues([".dlq"])
            let run = try await ChildProcess.run(
                IntegrationEnvironment.workerExecutable, ["--url", IntegrationEnvironment.url, "--queue", ""], timeout: 30)
            #expect(run.termination == .exited(64), "\(run)")
            #expect(run.stderr.contains("--queue is empty"), "\(run)")
            #expect(try await scope.admin.queueInfo(".dlq") == nil, "no '.dlq' declared")
        }
    }

    /// 300 bytes used to exit 1 after connecting; the limit is 238 bytes, so
    /// that `<queue>.retry.2592000000` (17 more) fits AMQP's 255.
    @Test func aQueueNameTooLongForItsRetryQueuesExits64NamingTheLimit() async throws {
        for (executable, arguments) in [
            (IntegrationEnvironment.workerExecutable, ["--queue", String(repeating: "q", count: 300)]),
            (IntegrationEnvironment.workerExecutable, ["--queue", String(repeating: "q", count: 239)]),
            (IntegrationEnvironment.cliExecutable, ["send", "add", "1", "--queue", String(repeating: "q", count: 239)]),
        ] {
            let run = try await ChildProcess.run(executable, arguments + ["--url", IntegrationEnvironment.url], timeout: 30)
            #expect(run.termination == .exited(64), "\(run)")
            #expect(run.stderr.contains("at most 238"), "\(run)")
            #expect(run.stderr.contains(".retry.2592000000"), "\(run)")
        }
    }

    @Test func aQueueNameOfExactly238BytesIsServed() async throws {
        let queue = IntegrationEnvironment.uniqueQueue("long") + "-"
        let name = queue + String(repeating: "q", count: QueueNaming.longestTaskQueueName - queue.utf8.count)
        #expect(name.utf8.count == 238)
        try await TestScope.run("long-queue") { scope in
            scope.deleteAtEnd(name)
            scope.deleteAtEnd(name + ".dlq")
            let worker = try await scope.startWorker(queues: [name])
            await scope.stopGracefully(worker)
        }
    }

    @Test func theSchedulerChecksItsQueueNames() async throws {
        let run = try await ChildProcess.run(
            IntegrationEnvironment.schedulerExecutable,
            ["--every", "60:add:\(String(repeating: "q", count: 300))", "--url", IntegrationEnvironment.url,
             "--state", "memory://"],
            timeout: 30)
        #expect(run.termination == .exited(64), "\(run)")
        #expect(run.stderr.contains("at most 238"), "\(run)")
    }

    // MARK: URLs

    /// `amqp:/127.0.0.1:5692` (one slash) used to connect to
    /// 127.0.0.1:5672 with vhost "127.0.0.1:5692"; `amqp://gu est@@…`
    /// logged in as "gu est@". Each executable refuses them with 64, in
    /// `--url` and in `--url-file` alike.
    @Test("A URL that is not amqp[s]://… exactly is a usage error", arguments: [
        ("amqp:/127.0.0.1:5692", "'//'"),
        ("amqp://gu est@@127.0.0.1", "more than one '@'"),
        ("amqp://gu est@127.0.0.1", "a space is not allowed in the user name"),
        ("amqp://guest:guest@127.0.0.1:/%2F", "the port after ':' is empty"),
        ("amqp://guest:guest@127.0.0.1/a/b", "one path segment"),
        ("127.0.0.1:5672", "must start with amqp:// or amqps://"),
    ])
    func malformedURLsExit64(url: String, reason: String) async throws {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("qtasks-bad-url-\(UUID().uuidString)").path
        try (url + "\n").write(toFile: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: file) }
        for (executable, arguments) in [
            (IntegrationEnvironment.workerExecutable, ["--queue", "default"]),
            (IntegrationEnvironment.cliExecutable, ["send", "add", "1", "2", "--wait", "1"]),
            (IntegrationEnvironment.cliExecutable, ["dlq", "list", "default"]),
            (IntegrationEnvironment.schedulerExecutable, ["--every", "60:add", "--state", "memory://"]),
        ] {
            for source in [["--url", url], ["--url-file", file]] {
                let run = try await ChildProcess.run(executable, arguments + source, timeout: 30)
                #expect(run.termination == .exited(64), "\(executable) \(source): \(run)")
                #expect(run.stderr.contains(reason), "\(executable) \(source): \(run)")
            }
        }
    }

    @Test func aBadPasswordCharacterIsRefusedWithoutShowingThePassword() async throws {
        let run = try await ChildProcess.run(
            IntegrationEnvironment.workerExecutable, ["--url", "amqp://guest:hunter 2@127.0.0.1/%2F"], timeout: 30)
        #expect(run.termination == .exited(64), "\(run)")
        #expect(run.stderr.contains("password"), "\(run)")
        #expect(!run.stderr.contains("hunter"), "the password is not shown: \(run)")
    }

    // MARK: Numeric limits

    /// `--concurrency 100000` used to log `prefetch=400000` while the
    /// broker got 65535, though `--prefetch 70000` was refused: now every
    /// value given out of range is refused with its range.
    @Test("Out-of-range numbers exit 64 naming the range", arguments: [
        (["--concurrency", "100000"], "--concurrency must be 1...65535"),
        (["--concurrency", "0"], "--concurrency must be 1...65535"),
        (["--prefetch", "70000"], "--prefetch must be 1...65535"),
        (["--queue-concurrency", "default=70000"], "N 1...65535"),
        (["--max-message-bytes", "600000000"], "--max-message-bytes must be 1...536870912"),
        // Under a second, every delivery was past its deadline before it
        // started and was requeued for ever (break-it run, #17 item 5).
        (["--consumer-timeout", "0.5"], "--consumer-timeout must be 0 (not set) or seconds from 1"),
        (["--consumer-timeout", "1e-9"], "--consumer-timeout must be 0 (not set) or seconds from 1"),
    ])
    func outOfRangeNumbersExit64(arguments: [String], message: String) async throws {
        let run = try await ChildProcess.run(
            IntegrationEnvironment.workerExecutable, arguments + ["--url", IntegrationEnvironment.url], timeout: 30)
        #expect(run.termination == .exited(64), "\(run)")
        #expect(run.stderr.contains(message), "\(run)")
    }

    /// `--taskiq-queues` declares quorum queues with Taskiq's arguments:
    /// combinations that cannot hold are refused before anything connects.
    @Test("Taskiq declarations that cannot hold exit 64 saying why", arguments: [
        (["--taskiq-queues", "--dramatiq-delay-queues"], "choose one"),
        (["--taskiq-queues", "--max-priority", "5"], "refuse --max-priority"),
        (["--taskiq-queues", "--taskiq-exchange", ":topic"], "--taskiq-exchange needs a name"),
        (["--taskiq-queues", "--taskiq-exchange", "taskiq:fanout"], "must be direct or topic"),
        (["--taskiq-queues", "--queue-type", "classic"], "declares quorum queues"),
        (["--taskiq-queues", "--queue", "t4", "--taskiq-dead-letter-queue", "t4"], "cannot be its own dead-letter queue"),
    ])
    func impossibleTaskiqDeclarationsExit64(arguments: [String], message: String) async throws {
        let run = try await ChildProcess.run(
            IntegrationEnvironment.workerExecutable, arguments + ["--url", IntegrationEnvironment.url], timeout: 30)
        #expect(run.termination == .exited(64), "\(run)")
        #expect(run.stderr.contains(message), "\(run)")
    }

    /// The default prefetch, 4 × concurrency, stops at 65535: what is
    /// logged is what the broker got.
    @Test func theDefaultPrefetchLoggedIsTheOneTheBrokerGot() async throws {
        try await TestScope.run("prefetch-log") { scope in
            let worker = try await scope.startWorker(concurrency: 20_000)
            #expect(worker.standardErrorText.contains("prefetch=65535"), "\(worker.stderrTail())")
            #expect(!worker.standardErrorText.contains("prefetch=80000"), "\(worker.stderrTail())")
            await scope.stopGracefully(worker)
        }
    }

    // MARK: qtasks dlq

    /// `dlq list` of a missing dead-letter queue used to log a warning
    /// about a channel closed by the broker ("unreachable" to a reader):
    /// it says the queue does not exist, and exits 4 as documented for a
    /// request the broker refused (as `purge` of a missing queue).
    @Test func dlqOfAMissingQueueSaysItDoesNotExist() async throws {
        try await TestScope.run("dlq-missing") { scope in
            for subcommand in [["list"], ["show"], ["replay"], ["purge", "--yes"]] {
                let run = try await scope.runCLI(["dlq"] + subcommand + [scope.queue])
                #expect(run.termination == .exited(4), "\(subcommand): \(run)")
                #expect(run.stderr.contains("\(scope.deadLetterQueue) does not exist (404 NOT_FOUND"), "\(subcommand): \(run)")
                #expect(!run.stderr.contains("unreachable"), "\(subcommand): \(run)")
                #expect(!run.stderr.contains("channel closed by broker"), "no AMQP warning: \(subcommand): \(run)")
            }
        }
    }
}

extension IntegrationEnvironment {
    static var schedulerExecutable: String { productsDirectory.appendingPathComponent("qtasks-scheduler").path }
}

/// No broker needed.
@Suite struct QueueNameLimitTests {
    /// The core's name limit counts on the RabbitMQ broker's longest retry
    /// queue name.
    @Test func theLongestRetryDelayIsTheRabbitMQBrokers() {
        #expect(QueueNaming.longestRetryDelayMilliseconds == RetryDelays.maximumMilliseconds)
        let longest = String(repeating: "q", count: QueueNaming.longestTaskQueueName)
        #expect(RetryDelays.queueName(for: longest, milliseconds: RetryDelays.maximumMilliseconds).utf8.count == 255)
    }

    /// `RabbitMQBrokerConfiguration(url:)` throws for a library user before
    /// any connection, for each URL of a failover list.
    @Test func theLibraryRefusesTheSameURLs() {
        for url in ["amqp:/127.0.0.1:5692", "amqp://gu est@@127.0.0.1", "amqp://h/%2F;amqp:/h2"] {
            #expect(throws: AMQPError.self, "\(url)") { try RabbitMQBrokerConfiguration(url: url) }
        }
    }
}
