import Foundation
import QTasks
import Testing

/// `qtasks workflow send` and `qtasks workflow UUID` against an example
/// worker with a result store, and their refusals.
@Suite(.enabled(if: IntegrationEnvironment.enabled, "no RabbitMQ reachable at QTASKS_URL; deploy/test.sh starts one"),
       .timeLimit(.minutes(2)))
struct WorkflowCLITests {
    func write(_ json: String) throws -> String {
        let path = NSTemporaryDirectory() + "qtasks-workflow-\(UUID().uuidString).json"
        try json.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    @Test func aChordSentFromTheCommandLineAndItsTree() async throws {
        let store = try TestResultStore.sqlite()
        defer { store.remove() }
        try await TestScope.run("wf-cli") { scope in
            _ = try await scope.startWorker(on: scope.queue, arguments: store.arguments)
            let file = try write(#"{"chain": [{"group": [{"task": "add", "args": [1, 2]}, {"task": "add", "args": [3, 4]}]}, {"task": "echo", "args": ["done"]}]}"#)
            defer { try? FileManager.default.removeItem(atPath: file) }
            let sent = try await scope.runCLI(["workflow", "send", file, "--queue", scope.queue, "--wait", "30"])
            #expect(sent.termination == .exited(0), "\(sent)")
            let result = try JSONDecoder().decode(TaskResult.self, from: Data(sent.stdout.utf8))
            #expect(result.status == .success)
            #expect(result.returning == ["args": [[3, 7], "done"], "kwargs": [:]], "echo got the group's list first: \(sent)")
            let id = try #require(sent.stderr.components(separatedBy: "workflow ").dropFirst().first?.components(separatedBy: " ").first)
            #expect(id == result.uuid)

            let shown = try await scope.runStoreCLI(["workflow", id], store: store)
            #expect(shown.termination == .exited(0), "\(shown)")
            let lines = shown.stdout.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }
            #expect(lines.first?.hasPrefix("workflow \(id)  success") == true, "\(shown)")
            #expect(lines.contains { $0.hasPrefix("group (2 members)  2/2 ended, 0 failed, complete") }, "\(shown)")
            // Each step's status comes from its record (the worker writes them a moment after the ack).
            try await waitUntil("every step's record", timeout: 30) {
                let again = try await scope.runStoreCLI(["workflow", id], store: store).stdout
                let steps = again.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }
                return steps.filter { $0.hasPrefix("add  success  ") || $0.hasPrefix("echo  success  ") }.count == 3
            }
            let json = try await scope.runStoreCLI(["workflow", "show", id, "--json"], store: store)
            #expect(json.termination == .exited(0), "\(json)")
            #expect(json.stdout.contains(#""policy":"fail_fast""#) && json.stdout.contains(#""kind":"group""#), "\(json)")

            let missing = try await scope.runStoreCLI(["workflow", UUID().uuidString.lowercased()], store: store)
            #expect(missing.termination == .exited(2), "\(missing)")
        }
    }

    @Test func aFailingMemberFailsTheWorkflowWithExitOne() async throws {
        let store = try TestResultStore.sqlite()
        defer { store.remove() }
        try await TestScope.run("wf-cli-fail") { scope in
            _ = try await scope.startWorker(on: scope.queue, arguments: store.arguments)
            let file = try write(#"{"chain": [{"group": [{"task": "add", "args": [1, 2]}, {"task": "fail", "args": ["ошибка"]}]}, {"task": "echo"}]}"#)
            defer { try? FileManager.default.removeItem(atPath: file) }
            let sent = try await scope.runCLI(["workflow", "send", file, "--queue", scope.queue, "--wait", "30"])
            #expect(sent.termination == .exited(1), "\(sent)")
            #expect(sent.stdout.contains("ошибка"), "the member's error, in the workflow's result: \(sent)")
            let dead = try await scope.admin.waitForMessage(in: scope.deadLetterQueue, timeout: 10, "the failed member's dead letter")
            #expect(dead.properties.headers?["x-qtasks-workflow"] != nil)
        }
    }

    @Test func badWorkflowsAreRefusedBeforeAnythingIsSent() async throws {
        try await TestScope.run("wf-cli-bad") { scope in
            let cases: [(String, String)] = [
                (#"{"chain": []}"#, "at least one step"),
                (#"{"group": [{"task": "add"}], "window": 0}"#, "at window: a group's window must be a whole number of at least 1, not 0"),
                // JSONDecoder says "not valid JSON" for a fraction where it
                // wants an Int: the field and what it must be instead.
                (#"{"group": [{"task": "add"}], "window": 2.5}"#, "at window: a group's window must be a whole number, not 2.5"),
                (#"{"chain": [{"group": [{"task": "add"}], "window": "3"}]}"#, #"at chain[0].window: a group's window must be a whole number, not "3""#),
                (#"{"group": [{"task": "add", "priority": 1.5}]}"#, "at group[0].priority: a task's priority must be a whole number, not 1.5"),
                (#"{"tsak": "add"}"#, "\"task\", \"chain\" or \"group\""),
                ("not json", "cannot read the workflow"),
            ]
            for (json, expected) in cases {
                let file = try write(json)
                defer { try? FileManager.default.removeItem(atPath: file) }
                let run = try await scope.runCLI(["workflow", "send", file, "--queue", scope.queue])
                #expect(run.termination == .exited(64), "\(json): \(run)")
                #expect(run.stderr.contains(expected), "\(json): \(run)")
            }
            let policy = try await scope.runCLI(["workflow", "send", "-", "--policy", "sometimes"])
            #expect(policy.termination == .exited(64) && policy.stderr.contains("--policy must be one of"), "\(policy)")
            let info = try await scope.admin.queueInfo(scope.queue)
            #expect((info?.messageCount ?? 0) == 0, "nothing was sent")
        }
    }
}
