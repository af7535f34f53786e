import Foundation
import QTasks
import Testing

/// `qtasks send` (the built executable) against a worker process.
@Suite(.enabled(if: IntegrationEnvironment.enabled, "no RabbitMQ reachable at QTASKS_URL; deploy/test.sh starts one"),
       .timeLimit(.minutes(2)))
struct CLITests {
    private func parsedResult(_ run: CompletedProcess) throws -> ResultMessage {
        try ResultMessage(
            body: Array(run.stdout.trimmingCharacters(in: .whitespacesAndNewlines).utf8), correlationID: nil,
            contentType: "application/json")
    }

    @Test func sendAddPrintsTheSuccessResultAndExitsZero() async throws {
        try await TestScope.run("cli-add") { scope in
            _ = try await scope.startWorker()
            let run = try await scope.runCLI(["send", "add", "2", "3", "--queue", scope.queue, "--wait", "20"])
            #expect(run.termination == .exited(0), "\(run)")
            let result = try parsedResult(run)
            result.expectDocumented(uuid: nil, taskName: "add", status: "success", returning: 5)
            #expect(run.stdout.contains(#""returning":5,"#), "\(run)")
        }
    }

    @Test func sendFailPrintsTheErrorResultAndExitsOne() async throws {
        try await TestScope.run("cli-fail") { scope in
            _ = try await scope.startWorker()
            let run = try await scope.runCLI(["send", "fail", "boom", "--queue", scope.queue, "--wait", "20"])
            #expect(run.termination == .exited(1), "\(run)")
            let result = try parsedResult(run)
            result.expectDocumented(uuid: nil, taskName: "fail", status: "error", tracebackContains: ["ExampleError: boom"])
            #expect(run.stderr.contains("boom"), "\(run)")
            // The failed task is in the dead-letter queue.
            let dead = try await scope.admin.waitForMessage(in: scope.deadLetterQueue, timeout: 10, "the failed task")
            #expect(dead.properties.headers?["x-qtasks-error-type"]?.text == "ExampleError")
        }
    }

    /// Russian text and emoji as a CLI argument and in --kwargs: printed
    /// back unescaped, and equal after parsing.
    @Test func sendEchoPrintsNonASCIITextUnescaped() async throws {
        try await TestScope.run("cli-utf8") { scope in
            _ = try await scope.startWorker()
            let text = "Введите телефон 📞😀"
            let run = try await scope.runCLI([
                "send", "echo", text, "42", "--kwargs", #"{"город": "Санкт-Петербург", "флаг": "🇷🇺"}"#,
                "--queue", scope.queue, "--wait", "20",
            ])
            #expect(run.termination == .exited(0), "\(run)")
            #expect(run.stdout.contains(text) && run.stdout.contains("Санкт-Петербург") && run.stdout.contains("🇷🇺"), "\(run)")
            #expect(!run.stdout.contains("\\u"), "no \\u escapes: \(run)")
            let result = try parsedResult(run)
            result.expectDocumented(
                uuid: nil, taskName: "echo", status: "success",
                returning: ["args": [.string(text), 42], "kwargs": ["город": "Санкт-Петербург", "флаг": "🇷🇺"]])
        }
    }

    /// Nobody consumes the queue: no result within --wait 1, exit 3.
    @Test func sendWithoutAWorkerTimesOutWithExitThree() async throws {
        try await TestScope.run("cli-timeout") { scope in
            let run = try await scope.runCLI(["send", "add", "2", "3", "--queue", scope.queue, "--wait", "1"], timeout: 20)
            #expect(run.termination == .exited(3), "\(run)")
            #expect(run.stdout.isEmpty, "\(run)")
            #expect(run.stderr.contains("no result"), "\(run)")
            #expect(run.elapsed < .seconds(15), "\(run)")
            // The client declared the queue, so the task waits there.
            #expect(try await scope.admin.queueInfo(scope.queue)?.messageCount == 1)
        }
    }

    /// `--wait 0` (also with `--count`): nobody will read a result, so the
    /// message names no reply_to and the worker publishes none (and logs no
    /// "result dropped" once the CLI is gone). No worker runs: the messages
    /// are read as they wait in the queue.
    @Test func sendWithWaitZeroSetsNoReplyTo() async throws {
        try await TestScope.run("cli-no-reply") { scope in
            let run = try await scope.runCLI(["send", "add", "2", "3", "--queue", scope.queue, "--wait", "0"])
            #expect(run.termination == .exited(0), "\(run)")
            let uuid = run.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            let message = try await scope.admin.waitForMessage(in: scope.queue, timeout: 10, "the task sent with --wait 0")
            #expect(message.properties.messageID == uuid)
            #expect(message.properties.correlationID == uuid)
            #expect(message.properties.replyTo == nil, "reply_to: \(message.properties.replyTo ?? "")")

            let many = try await scope.runCLI(["send", "add", "2", "3", "--queue", scope.queue, "--wait", "0", "--count", "3"])
            #expect(many.termination == .exited(0), "\(many)")
            #expect(many.stdout.contains("sent 3 tasks in"), "\(many)")
            #expect(!many.stdout.contains("results"), "\(many)")
            for index in 1...3 {
                let copy = try await scope.admin.waitForMessage(in: scope.queue, timeout: 10, "copy \(index) sent with --count 3 --wait 0")
                #expect(copy.properties.replyTo == nil, "reply_to: \(copy.properties.replyTo ?? "")")
            }
        }
    }

    @Test func wrongPasswordExitsFourWith403AccessRefused() async throws {
        try await TestScope.run("cli-password") { scope in
            let url = try Self.url(replacingCredentialsWith: "guest:wrong-password")
            let run = try await scope.runCLI(["send", "add", "2", "3", "--queue", scope.queue, "--wait", "5"], url: url, timeout: 30)
            #expect(run.termination == .exited(4), "\(run)")
            #expect(run.stderr.contains("403") && run.stderr.contains("ACCESS_REFUSED"), "\(run)")
            #expect(!run.stderr.contains("wrong-password"), "the password is not printed: \(run)")
        }
    }

    @Test func unknownVirtualHostExitsFourWith530() async throws {
        try await TestScope.run("cli-vhost") { scope in
            let url = try Self.url(replacingVirtualHostWith: "no-such-vhost-\(UUID().uuidString.prefix(8))")
            let run = try await scope.runCLI(["send", "add", "2", "3", "--queue", scope.queue, "--wait", "5"], url: url, timeout: 30)
            #expect(run.termination == .exited(4), "\(run)")
            #expect(run.stderr.contains("530"), "\(run)")
        }
    }

    @Test func closedPortExitsFourPromptly() async throws {
        try await TestScope.run("cli-port") { scope in
            let run = try await scope.runCLI(
                ["send", "add", "2", "3", "--queue", scope.queue, "--wait", "5"], url: "amqp://guest:guest@127.0.0.1:1/%2F",
                timeout: 30)
            #expect(run.termination == .exited(4), "\(run)")
            #expect(run.elapsed < .seconds(20), "\(run)")
        }
    }

    @Test func kwargsThatAreNotAnObjectIsAUsageError() async throws {
        try await TestScope.run("cli-usage") { scope in
            let run = try await scope.runCLI(["send", "add", "--kwargs", "[1, 2]", "--queue", scope.queue, "--wait", "5"])
            #expect(run.termination == .exited(64), "\(run)")
            #expect(run.stderr.contains("--kwargs"), "\(run)")
        }
    }

    /// Values that used to crash the CLI after it had sent the task (an
    /// infinite --wait) or to be sent as they were (an empty task name):
    /// refused before anything is sent, as usage errors.
    @Test("Bad values are usage errors and send nothing", arguments: [
        (["send", "add", "1", "--wait", "inf"], "--wait"),
        (["send", "add", "1", "--wait", "nan"], "--wait"),
        (["send", "add", "1", "--wait", "1e300"], "--wait"),
        (["send", ""], "task name"),
    ])
    func badValuesAreUsageErrors(arguments: [String], mentions: String) async throws {
        try await TestScope.run("cli-values") { scope in
            let run = try await scope.runCLI(arguments + ["--queue", scope.queue])
            #expect(run.termination == .exited(64), "\(run)")
            #expect(run.stderr.contains(mentions), "\(run)")
            #expect(!run.stderr.contains("Fatal error"), "\(run)")
            #expect(try await scope.admin.queueInfo(scope.queue) == nil, "nothing declared, nothing sent")
        }
    }

    @Test func aQueueNameTooLongForItsRetryQueuesIsAUsageError() async throws {
        let run = try await ChildProcess.run(
            IntegrationEnvironment.cliExecutable, ["send", "add", "1", "--queue", String(repeating: "q", count: 300)],
            timeout: 30)
        #expect(run.termination == .exited(64), "\(run)")
        #expect(run.stderr.contains("--queue is 300 bytes"), "\(run)")
    }

    @Test("The example worker refuses delays, limits and URLs it cannot use (usage errors, 64)", arguments: [
        ["--retry-delay", "inf"], ["--retry-max-delay", "nan"], ["--task-time-limit", "inf"], ["--shutdown-grace", "inf"],
        ["--url", "http://x"], ["--url", "amqp://h:99999/"],
    ])
    func workerRefusesNonFiniteSeconds(arguments: [String]) async throws {
        let run = try await ChildProcess.run(IntegrationEnvironment.workerExecutable, arguments, timeout: 30)
        #expect(run.termination == .exited(64), "\(run)")
        #expect(!run.stderr.contains("Fatal error"), "\(run)")
    }

    // MARK: URLs

    /// `IntegrationEnvironment.url` with other credentials.
    static func url(replacingCredentialsWith credentials: String) throws -> String {
        let url = IntegrationEnvironment.url
        let scheme = try #require(url.range(of: "://"))
        let rest = url[scheme.upperBound...]
        let hostStart = rest.range(of: "@").map { $0.upperBound } ?? rest.startIndex
        return "amqp://\(credentials)@\(rest[hostStart...])"
    }

    /// `IntegrationEnvironment.url` with another vhost.
    static func url(replacingVirtualHostWith vhost: String) throws -> String {
        let url = IntegrationEnvironment.url
        let scheme = try #require(url.range(of: "://"))
        let rest = url[scheme.upperBound...]
        let authority = rest.prefix { $0 != "/" }
        return "\(url[..<scheme.upperBound])\(authority)/\(vhost)"
    }
}
