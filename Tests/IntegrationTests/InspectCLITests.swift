import Foundation
import QTasks
import Testing

/// `qtasks inspect`, `qtasks purge` and `qtasks send --count` (the built
/// executable) against the test broker.
@Suite(.enabled(if: IntegrationEnvironment.enabled, "no RabbitMQ reachable at QTASKS_URL; deploy/test.sh starts one"),
       .timeLimit(.minutes(2)))
struct InspectCLITests {
    /// Sends `count` copies of add(2, 3) without waiting: the client
    /// declares the queue, so they wait there.
    private func fill(_ scope: TestScope, _ count: Int) async throws {
        let run = try await scope.runCLI(["send", "add", "2", "3", "--count", String(count), "--queue", scope.queue, "--wait", "0"])
        #expect(run.termination == .exited(0), "\(run)")
        #expect(run.stdout.contains("sent \(count) tasks in "), "\(run)")
        try await waitUntil("\(count) messages in \(scope.queue)", timeout: 30) {
            try await scope.admin.queueInfo(scope.queue)?.messageCount == UInt32(count)
        }
    }

    private func jsonRows(_ run: CompletedProcess) throws -> [[String: Any]] {
        let parsed = try JSONSerialization.jsonObject(with: Data(run.stdout.utf8))
        return try #require(parsed as? [[String: Any]], "\(run)")
    }

    @Test func inspectShowsReadyAndConsumerCountsOfAQueueWithoutAWorker() async throws {
        try await TestScope.run("cli-inspect") { scope in
            try await fill(scope, 3)
            let table = try await scope.runCLI(["inspect", scope.queue])
            #expect(table.termination == .exited(0), "\(table)")
            let lines = table.stdout.split(separator: "\n").map(String.init)
            #expect(lines.first?.hasPrefix("QUEUE") == true, "\(table)")
            let row = try #require(lines.first { $0.hasPrefix(scope.queue + " ") }, "\(table)")
            #expect(row.split(separator: " ", omittingEmptySubsequences: true).map(String.init)
                == [scope.queue, "queue", "3", "n/a", "0"], "\(table)")
            #expect(table.stdout.contains("unacked: n/a (needs --management-url)"), "\(table)")
            // Missing retry queues are skipped quietly.
            #expect(!table.stderr.contains("404") && !table.stdout.contains(".retry."), "\(table)")

            let json = try await scope.runCLI(["inspect", scope.queue, "--json"])
            #expect(json.termination == .exited(0), "\(json)")
            let rows = try jsonRows(json)
            let queue = try #require(rows.first { $0["queue"] as? String == scope.queue }, "\(json)")
            #expect(queue["ready"] as? Int == 3 && queue["consumers"] as? Int == 0 && queue["exists"] as? Bool == true, "\(json)")
            #expect(queue["unacked"] is NSNull, "\(json)")
        }
    }

    @Test func inspectCountsAWorkersConsumerAndItsDeadLetterQueue() async throws {
        try await TestScope.run("cli-inspect-worker") { scope in
            _ = try await scope.startWorker()
            // One failed task in the dead-letter queue.
            let failed = try await scope.runCLI(["send", "fail", "boom", "--queue", scope.queue, "--wait", "20"])
            #expect(failed.termination == .exited(1), "\(failed)")
            try await waitUntil("the failed task in \(scope.deadLetterQueue)", timeout: 30) {
                try await scope.admin.queueInfo(scope.deadLetterQueue)?.messageCount == 1
            }
            let json = try await scope.runCLI(["inspect", scope.queue, "--json"])
            #expect(json.termination == .exited(0), "\(json)")
            let rows = try jsonRows(json)
            let queue = try #require(rows.first { $0["queue"] as? String == scope.queue }, "\(json)")
            #expect(queue["ready"] as? Int == 0 && queue["consumers"] as? Int == 1, "\(json)")
            let dlq = try #require(rows.first { $0["queue"] as? String == scope.deadLetterQueue }, "\(json)")
            #expect(dlq["kind"] as? String == "dlq" && dlq["ready"] as? Int == 1 && dlq["consumers"] as? Int == 0, "\(json)")
        }
    }

    /// A stand-in for RabbitMQ's management API, for the answers a real one
    /// gives only in odd states (a wrong password's 401): answers GET /api/queues/%2F/<name> when the
    /// Basic credentials are guest:guest, and logs each path it serves.
    static let fakeManagementAPI = #"""
        import base64, http.server, json, sys
        class H(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                auth = self.headers.get("Authorization", "")
                if auth != "Basic " + base64.b64encode(b"guest:guest").decode():
                    self.send_response(401); self.end_headers(); return
                name = self.path.rsplit("/", 1)[-1]
                body = json.dumps({"name": name, "messages_ready": 7, "messages_unacknowledged": 2, "consumers": 5}).encode()
                self.send_response(200); self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body))); self.end_headers(); self.wfile.write(body)
                sys.stderr.write("PATH " + self.path + "\n"); sys.stderr.flush()
            def log_message(self, *args): pass
        server = http.server.HTTPServer(("127.0.0.1", 0), H)
        print(server.server_address[1], flush=True)
        server.serve_forever()
        """#

    @Test func inspectAsksTheManagementAPIForUnackedCounts() async throws {
        try await TestScope.run("cli-inspect-mgmt") { scope in
            try await fill(scope, 1)
            let server = try scope.spawn("/usr/bin/env", ["python3", "-c", Self.fakeManagementAPI])
            try await waitUntil("the fake management API to listen", timeout: 20) { !server.standardOutputText.isEmpty }
            let port = server.standardOutputText.trimmingCharacters(in: .whitespacesAndNewlines)
            let run = try await scope.runCLI(
                ["inspect", scope.queue, "--json", "--management-url", "http://guest:guest@127.0.0.1:\(port)"])
            #expect(run.termination == .exited(0), "\(run)")
            let rows = try jsonRows(run)
            let queue = try #require(rows.first { $0["queue"] as? String == scope.queue }, "\(run)")
            #expect(queue["ready"] as? Int == 7 && queue["unacked"] as? Int == 2 && queue["consumers"] as? Int == 5, "\(run)")
            #expect(server.standardErrorText.contains("PATH /api/queues/%2F/\(scope.queue)"), "\(server.standardErrorText)")

            let wrong = try await scope.runCLI(
                ["inspect", scope.queue, "--management-url", "http://guest:nope@127.0.0.1:\(port)"])
            #expect(wrong.termination == .exited(4), "\(wrong)")
            #expect(wrong.stderr.contains("HTTP 401") && !wrong.stderr.contains("nope"), "\(wrong)")
        }
    }

    /// The real management API (deploy/test.sh starts its broker with the
    /// plugin and exports `QTASKS_MANAGEMENT_URL`): a worker holding 3
    /// deliveries unacknowledged (one running, two prefetched) and 2 left
    /// ready; `inspect` reports exactly that. The API's statistics lag by up
    /// to a collection interval (1 s on that broker), hence the polling.
    @Test(.enabled(if: ProcessInfo.processInfo.environment["QTASKS_MANAGEMENT_URL"] != nil,
                   "QTASKS_MANAGEMENT_URL is not set (deploy/test.sh starts the broker with the management plugin)"))
    func inspectReadsUnackedCountsFromTheRealManagementAPI() async throws {
        let managementURL = try #require(ProcessInfo.processInfo.environment["QTASKS_MANAGEMENT_URL"])
        try await TestScope.run("cli-inspect-real-mgmt") { scope in
            _ = try await scope.startWorker(concurrency: 1, prefetch: 3)
            for _ in 0..<5 {
                let uuid = UUID().uuidString.lowercased()
                try await scope.publishTask(#"{"uuid": "\#(uuid)", "task_name": "sleep", "args": [20]}"#, correlationID: uuid)
            }
            var last: CompletedProcess?
            try await waitUntil("inspect to report 2 ready, 3 unacked, 1 consumer (last: \(String(describing: last)))", timeout: 30) {
                let run = try await scope.runCLI(["inspect", scope.queue, "--json", "--management-url", managementURL])
                last = run
                guard run.termination == .exited(0), let rows = try? jsonRows(run),
                    let queue = rows.first(where: { $0["queue"] as? String == scope.queue })
                else { return false }
                return queue["ready"] as? Int == 2 && queue["unacked"] as? Int == 3 && queue["consumers"] as? Int == 1
            }
            let table = try await scope.runCLI(["inspect", scope.queue, "--management-url", managementURL + "/api/"])
            #expect(table.termination == .exited(0), "the /api base form works too: \(table)")
            #expect(!table.stdout.contains("n/a"), "\(table)")
            #expect(!table.stdout.contains("guest:guest") && !table.stderr.contains("guest:guest"), "\(table)")

            // RabbitMQ's 401 carries a Basic challenge, which Foundation on
            // Linux would wait on for ever unless answered.
            let wrong = managementURL.replacingOccurrences(of: "guest:guest@", with: "guest:WRONGPASS@")
            let refused = try await scope.runCLI(["inspect", scope.queue, "--management-url", wrong], timeout: 30)
            #expect(refused.termination == .exited(4), "\(refused)")
            #expect(refused.stderr.contains("HTTP 401"), "\(refused)")
            #expect(!refused.stderr.contains("WRONGPASS"), "\(refused)")
        }
    }

    /// A task waiting for its retry: the retry queue that exists is listed
    /// with its message, the ones that do not are skipped.
    @Test func inspectListsARetryQueueThatExists() async throws {
        try await TestScope.run("cli-inspect-retry") { scope in
            _ = try await scope.startFaultWorker(["--max-attempts", "3", "--retry-delay", "30", "--retry-jitter", "0"])
            let retryQueue = scope.queue + ".retry.30000"
            scope.deleteAtEnd(retryQueue)
            let uuid = UUID().uuidString.lowercased()
            try await scope.publishTask(#"{"uuid": "\#(uuid)", "task_name": "always_fail", "args": ["nope"]}"#, correlationID: uuid)
            try await waitUntil("the retry copy in \(retryQueue)", timeout: 30) {
                try await scope.admin.queueInfo(retryQueue)?.messageCount == 1
            }
            let json = try await scope.runCLI(["inspect", scope.queue, "--json"])
            #expect(json.termination == .exited(0), "\(json)")
            let rows = try jsonRows(json)
            let retry = try #require(rows.first { $0["queue"] as? String == retryQueue }, "\(json)")
            #expect(retry["kind"] as? String == "retry" && retry["ready"] as? Int == 1, "\(json)")
            #expect(rows.filter { $0["kind"] as? String == "retry" }.count == 1, "\(json)")
            let table = try await scope.runCLI(["inspect", scope.queue])
            #expect(table.stdout.contains(retryQueue), "\(table)")
        }
    }

    @Test func inspectShowsAMissingNamedQueueAndSkipsItsMissingDeadLetterQueue() async throws {
        try await TestScope.run("cli-inspect-missing") { scope in
            let run = try await scope.runCLI(["inspect", scope.queue])
            #expect(run.termination == .exited(0), "\(run)")
            #expect(run.stdout.contains("missing"), "\(run)")
            #expect(!run.stdout.contains(scope.deadLetterQueue), "\(run)")
        }
    }

    @Test func purgeDeclinesWithoutYesAndPurgesWithIt() async throws {
        try await TestScope.run("cli-purge") { scope in
            try await fill(scope, 3)
            // stdin is /dev/null: no 'yes', nothing purged, exit 1.
            let declined = try await scope.runCLI(["purge", scope.queue])
            #expect(declined.termination == .exited(1), "\(declined)")
            #expect(declined.stderr.contains("not purged"), "\(declined)")
            #expect(try await scope.admin.queueInfo(scope.queue)?.messageCount == 3)

            let purged = try await scope.runCLI(["purge", scope.queue, "--yes"])
            #expect(purged.termination == .exited(0), "\(purged)")
            #expect(purged.stdout.contains("purged 3 messages from \(scope.queue)"), "\(purged)")
            #expect(try await scope.admin.queueInfo(scope.queue)?.messageCount == 0)
        }
    }

    @Test func purgeOfAMissingQueueExitsFour() async throws {
        try await TestScope.run("cli-purge-missing") { scope in
            let run = try await scope.runCLI(["purge", scope.queue, "--yes"])
            #expect(run.termination == .exited(4), "\(run)")
            #expect(run.stderr.contains("404"), "\(run)")
        }
    }

    @Test func sendCountFiftyWithAWorkerSummarizesFiftySucceeded() async throws {
        try await TestScope.run("cli-count") { scope in
            _ = try await scope.startWorker()
            let run = try await scope.runCLI(
                ["send", "add", "2", "3", "--count", "50", "--queue", scope.queue, "--wait", "30"], timeout: 60)
            #expect(run.termination == .exited(0), "\(run)")
            #expect(run.stdout.contains("sent 50 tasks in "), "\(run)")
            #expect(run.stdout.contains("results: 50 received, 50 succeeded, 0 failed, 0 timed out in "), "\(run)")
            #expect(run.stdout.contains("tasks/s") && run.stdout.contains("results/s"), "\(run)")
            // stderr is a pipe, not a terminal: no bar redrawn with \r.
            #expect(!run.stderr.contains("\r"), "\(run)")
        }
    }

    @Test func sendCountWithAFailingTaskExitsOne() async throws {
        try await TestScope.run("cli-count-fail") { scope in
            _ = try await scope.startWorker()
            let run = try await scope.runCLI(
                ["send", "fail", "boom", "--count", "3", "--queue", scope.queue, "--wait", "30"], timeout: 60)
            #expect(run.termination == .exited(1), "\(run)")
            #expect(run.stdout.contains("results: 3 received, 0 succeeded, 3 failed, 0 timed out"), "\(run)")
            #expect(run.stderr.contains("boom"), "\(run)")
        }
    }

    @Test func sendCountWithoutAWorkerTimesOutWithExitThree() async throws {
        try await TestScope.run("cli-count-timeout") { scope in
            let run = try await scope.runCLI(["send", "add", "1", "2", "--count", "5", "--queue", scope.queue, "--wait", "1"])
            #expect(run.termination == .exited(3), "\(run)")
            #expect(run.stdout.contains("results: 0 received, 0 succeeded, 0 failed, 5 timed out"), "\(run)")
        }
    }

    /// A producer that declares the queue first declares it as the workers
    /// will: `--queue-type quorum`, or `QTASKS_QUEUE_TYPE=quorum`; a bad
    /// type is a usage error (64) before anything is sent.
    @Test func sendDeclaresTheQueueTypeTheWorkersUse() async throws {
        try await TestScope.run("cli-qtype") { scope in
            let flag = try await scope.runCLI(["send", "add", "1", "2", "--queue", scope.queue, "--queue-type", "quorum", "--wait", "0"])
            #expect(flag.termination == .exited(0), "\(flag)")
            #expect(!flag.stderr.contains("PRECONDITION_FAILED"), "\(flag)")
            let other = scope.queue + "-env"
            scope.deleteAtEnd(other)
            scope.deleteAtEnd(other + ".dlq")
            let env = try await ChildProcess.run(
                IntegrationEnvironment.cliExecutable,
                ["send", "add", "1", "2", "--url", IntegrationEnvironment.url, "--queue", other, "--wait", "0"],
                environment: ["QTASKS_QUEUE_TYPE": "quorum"])
            #expect(env.termination == .exited(0), "\(env)")
            if let type = await sharedBrokerQueueType(scope.queue) {
                #expect(type == "quorum")
                #expect(await sharedBrokerQueueType(scope.queue + ".dlq") == "quorum")
                #expect(await sharedBrokerQueueType(other) == "quorum")
            }
            // Priorities need classic queues: refused before anything is declared.
            let priority = try await scope.runCLI(
                ["send", "add", "1", "--queue", other + "-p", "--queue-type", "quorum", "--max-priority", "5", "--wait", "0"])
            #expect(priority.termination == .exited(64), "\(priority)")
            #expect(priority.stderr.contains("--max-priority needs classic queues"), "\(priority)")
            let worker = try await ChildProcess.run(
                IntegrationEnvironment.workerExecutable, ["--queue-type", "quorum", "--max-priority", "5"], timeout: 30)
            #expect(worker.termination == .exited(64), "\(worker)")
            let bad = try await ChildProcess.run(
                IntegrationEnvironment.cliExecutable, ["send", "add", "1", "--queue", other, "--wait", "0"],
                environment: ["QTASKS_QUEUE_TYPE": "stream"])
            #expect(bad.termination == .exited(64), "\(bad)")
            #expect(bad.stderr.contains("QTASKS_QUEUE_TYPE must be classic or quorum, not 'stream'"), "\(bad)")
            // Case does not matter; an empty variable is unset; limits are bounded.
            let capital = try await scope.runCLI(["send", "add", "1", "2", "--queue", scope.queue, "--queue-type", "Quorum", "--wait", "0"])
            #expect(capital.termination == .exited(0) && !capital.stderr.contains("PRECONDITION_FAILED"), "\(capital)")
            let empty = try await ChildProcess.run(
                IntegrationEnvironment.cliExecutable,
                ["send", "add", "1", "--url", IntegrationEnvironment.url, "--queue", scope.queue + "-empty", "--wait", "0"],
                environment: ["QTASKS_QUEUE_TYPE": ""])
            scope.deleteAtEnd(scope.queue + "-empty")
            scope.deleteAtEnd(scope.queue + "-empty.dlq")
            #expect(empty.termination == .exited(0), "\(empty)")
            let huge = try await scope.runCLI(["send", "add", "1", "--queue", other, "--delivery-limit", "99999999999", "--wait", "0"])
            #expect(huge.termination == .exited(64) && huge.stderr.contains("--delivery-limit must be 0...2147483647"), "\(huge)")
            let tracing = try await ChildProcess.run(
                IntegrationEnvironment.workerExecutable, ["--queue", other], environment: ["QTASKS_TRACING": "yess"], timeout: 30)
            #expect(tracing.termination == .exited(64) && tracing.stderr.contains("QTASKS_TRACING must be"), "\(tracing)")
        }
    }

    @Test func everyCommandHasHelp() async throws {
        for command in [["inspect"], ["purge"], ["send"], ["dlq"], ["state"]] {
            let run = try await ChildProcess.run(IntegrationEnvironment.cliExecutable, command + ["--help"], timeout: 30)
            #expect(run.termination == .exited(0), "\(run)")
            #expect(run.stdout.contains("USAGE"), "\(run)")
        }
        let top = try await ChildProcess.run(IntegrationEnvironment.cliExecutable, ["--help"], timeout: 30)
        for name in ["send", "inspect", "purge", "dlq", "state"] { #expect(top.stdout.contains("  \(name)"), "\(top)") }
        let send = try await ChildProcess.run(IntegrationEnvironment.cliExecutable, ["send", "--help"], timeout: 30)
        #expect(send.stdout.contains("--count"), "\(send)")
    }
}
