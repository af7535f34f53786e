import Foundation
import QTasks
import Testing

/// `qtasks events`: tailing the qtasks.events exchange that a worker run
/// with --publish-events publishes to.
@Suite(.enabled(if: IntegrationEnvironment.enabled, "no RabbitMQ reachable at QTASKS_URL; deploy/test.sh starts one"),
       .timeLimit(.minutes(2)))
struct EventsCLITests {
    /// Starts `qtasks events` and waits until its queue is bound.
    private func tail(_ scope: TestScope, _ arguments: [String]) async throws -> ChildProcess {
        let events = try scope.spawn(
            IntegrationEnvironment.cliExecutable, ["events"] + arguments + ["--url", IntegrationEnvironment.url])
        try await waitUntil("`qtasks events` to listen", timeout: 20) {
            if let ended = events.exitStatus { throw ChildProcessError("qtasks events ended (\(ended)): \(events.standardErrorText)") }
            return events.standardErrorText.contains("listening")
        }
        return events
    }

    /// The events of one task (received, started, succeeded) arrive as JSON
    /// lines, and as text lines; `--count` ends the tail.
    @Test func eventsOfATaskFromAWorkerPublishingEvents() async throws {
        try await TestScope.run("events") { scope in
            // echo is a task only this test runs with --publish-events.
            let json = try await tail(scope, ["--pattern", "task.*.echo", "--count", "3", "--json"])
            let text = try await tail(scope, ["--pattern", "task.#", "--count", "3"])
            _ = try await scope.startWorker(on: scope.queue, arguments: ["--publish-events"])
            let send = try await scope.runCLI(["send", "echo", "hello", "--queue", scope.queue, "--wait", "20"])
            #expect(send.termination == .exited(0), "\(send)")
            let uuid = try #require(try ResultMessage(body: Array(send.stdout.utf8), correlationID: nil, contentType: nil).uuid)

            #expect(await json.waitForExit(timeout: 20) == .exited(0), "\(json.standardErrorText)")
            let events = jsonLines(json.standardOutputText)
            #expect(events.map { $0["kind"]?.stringValue } == ["received", "started", "succeeded"], "\(json.standardOutputText)")
            #expect(events.allSatisfy { $0["uuid"]?.stringValue == uuid && $0["task_name"] == "echo" && $0["queue"]?.stringValue == scope.queue })
            #expect(events.first?["arguments"] == ["args": ["hello"], "kwargs": [:]])
            #expect(events.last?["result"] == ["args": ["hello"], "kwargs": [:]])
            // Each body is a TaskEvent.
            for line in json.standardOutputText.split(separator: "\n") {
                #expect(throws: Never.self) { try JSONDecoder().decode(TaskEvent.self, from: Data(line.utf8)) }
            }

            #expect(await text.waitForExit(timeout: 20) == .exited(0), "\(text.standardErrorText)")
            let lines = text.standardOutputText.split(separator: "\n")
            #expect(lines.count == 3, "\(text.standardOutputText)")
            #expect(lines.last?.contains("task.succeeded.echo \(uuid) attempt=1 worker=") == true, "\(text.standardOutputText)")
        }
    }

    /// Without --count the tail runs until SIGINT, then exits 0.
    @Test func sigintEndsTheTailCleanly() async throws {
        try await TestScope.run("events-int") { scope in
            let events = try await tail(scope, ["--pattern", "worker.*"])
            events.signal(SIGINT)
            #expect(await events.waitForExit(timeout: 10) == .exited(0), "\(events.standardErrorText)")
        }
    }
}
