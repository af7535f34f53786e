import Foundation
import QTasks
import QTasksResultStores
import Testing

/// `qtasks result` and `qtasks tasks` against a result store that example
/// workers (run with --result-store) write: a durable store shared by the
/// processes of one test, an SQLite file of its own or Redis under a key
/// prefix of its own.
@Suite(.enabled(if: IntegrationEnvironment.enabled, "no RabbitMQ reachable at QTASKS_URL; deploy/test.sh starts one"),
       .timeLimit(.minutes(2)))
struct ResultsCLITests {
    /// A task sent with `--wait 0` by a sender that exited before any
    /// worker ran: its record says `new`, and once a worker started after
    /// the sender ran it, `qtasks result --wait` prints the success.
    @Test func resultOfATaskSentWithoutWaitingAfterTheSenderExited() async throws {
        let store = try TestResultStore.sqlite()
        defer { store.remove() }
        try await resultOfATaskSentWithoutWaiting(store: store)
    }

    @Test(.enabled(if: IntegrationRedis.enabled, "no Redis at QTASKS_REDIS_URL; deploy/redis.sh start"))
    func resultOfATaskSentWithoutWaitingOnRedis() async throws {
        try await resultOfATaskSentWithoutWaiting(store: TestResultStore.redis())
    }

    func resultOfATaskSentWithoutWaiting(store: TestResultStore) async throws {
        try await TestScope.run("res-later") { scope in
            let send = try await scope.runCLI(["send", "add", "2", "3", "--queue", scope.queue, "--wait", "0"] + store.arguments)
            #expect(send.termination == .exited(0), "\(send)")
            #expect(!send.stderr.contains("warning"), "\(send)")
            let uuid = send.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            #expect(!uuid.isEmpty)

            // The sender exited; no worker has run yet: recorded as sent.
            let pending = try await scope.runStoreCLI(["result", uuid, "--json"], store: store)
            #expect(pending.termination == .exited(3), "not ended yet: \(pending)")
            let pendingRecord = try JSONDecoder().decode(TaskRecord.self, from: Data(pending.stdout.utf8))
            #expect(pendingRecord.status == .new && pendingRecord.taskName == "add" && pendingRecord.queue == scope.queue)

            _ = try await scope.startWorker(on: scope.queue, arguments: store.arguments)
            let result = try await scope.runStoreCLI(["result", uuid, "--wait", "10"], store: store)
            #expect(result.termination == .exited(0), "\(result)")
            let lines = result.stdout.split(separator: "\n").map { $0.replacingOccurrences(of: " ", with: "") }
            #expect(lines.contains("uuid:\(uuid)"), "\(result)")
            #expect(lines.contains("status:success") && lines.contains("result:5") && lines.contains("task:add"), "\(result)")
            #expect(lines.contains("attempts:1") && lines.contains { $0.hasPrefix("worker:") }, "\(result)")

            let json = try await scope.runStoreCLI(["result", uuid, "--wait", "10", "--json"], store: store)
            #expect(json.termination == .exited(0), "\(json)")
            let record = try JSONDecoder().decode(TaskRecord.self, from: Data(json.stdout.utf8))
            #expect(record.uuid == uuid && record.status == .success && record.result == 5, "\(json)")
            #expect(record.arguments == RecordedArguments(args: [2, 3], kwargs: [:]), "recorded by the worker: \(json)")
            #expect(record.finishedAt != nil && record.workerID != nil, "\(json)")
            #expect(record.events.map(\.kind) == [.sent, .received, .started, .succeeded], "\(json)")

            // A uuid nobody sent: exit 2.
            let missing = try await scope.runStoreCLI(["result", UUID().uuidString.lowercased()], store: store)
            #expect(missing.termination == .exited(2), "\(missing)")
        }
    }

    /// A failing task is dead-lettered; `qtasks tasks --status failed`
    /// lists it with its traceback (and `--json` with its dead-letter
    /// queue); a secret task's arguments are not in its record.
    @Test func tasksListsAFailedTaskWithItsTraceback() async throws {
        let store = try TestResultStore.sqlite()
        defer { store.remove() }
        try await tasksListsAFailedTask(store: store)
    }

    @Test(.enabled(if: IntegrationRedis.enabled, "no Redis at QTASKS_REDIS_URL; deploy/redis.sh start"))
    func tasksListsAFailedTaskWithItsTracebackOnRedis() async throws {
        try await tasksListsAFailedTask(store: TestResultStore.redis())
    }

    func tasksListsAFailedTask(store: TestResultStore) async throws {
        try await TestScope.run("res-failed") { scope in
            _ = try await scope.startWorker(on: scope.queue, arguments: store.arguments)
            let message = "boom-\(UUID().uuidString.prefix(8))"
            let send = try await scope.runCLI(["send", "fail", message, "--queue", scope.queue, "--wait", "20"] + store.arguments)
            #expect(send.termination == .exited(1), "\(send)")
            let uuid = try #require(try ResultMessage(body: Array(send.stdout.utf8), correlationID: nil, contentType: nil).uuid)
            _ = try await scope.admin.waitForMessage(in: scope.deadLetterQueue, timeout: 10, "the failed task in the dead-letter queue")

            // The worker records in the background: wait for the end.
            let result = try await scope.runStoreCLI(["result", uuid, "--wait", "10", "--json"], store: store)
            #expect(result.termination == .exited(1), "an error exits as send does: \(result)")
            let record = try JSONDecoder().decode(TaskRecord.self, from: Data(result.stdout.utf8))
            #expect(record.status == .error && record.deadLetterQueue == scope.deadLetterQueue, "\(result)")

            let tasks = try await scope.runStoreCLI(["tasks", "--status", "failed", "--queue", scope.queue], store: store)
            #expect(tasks.termination == .exited(0), "\(tasks)")
            let lines = tasks.stdout.split(separator: "\n").map(String.init)
            let row = try #require(lines.firstIndex { $0.contains(uuid) }, "\(tasks)")
            #expect(lines[row].contains(" error ") && lines[row].contains(" fail "), "\(tasks)")
            #expect(lines.count > row + 1 && lines[row + 1].hasPrefix("    ") && lines[row + 1].contains("ExampleError: \(message)"),
                    "the traceback under its row: \(tasks)")

            let asJSON = try await scope.runStoreCLI(["tasks", "--status", "error", "--task", "fail", "--since", "10m", "--json", "--queue", scope.queue], store: store)
            let objects = jsonLines(asJSON.stdout)
            #expect(objects.count == 1 && objects.first?["uuid"]?.stringValue == uuid, "\(asJSON)")
            #expect(objects.first?["dead_letter_queue"]?.stringValue == scope.deadLetterQueue, "\(asJSON)")
            #expect(objects.first?["failure"]?.objectValue?["traceback"]?.stringValue?.contains(message) == true, "\(asJSON)")

            // Succeeded tasks are not failed ones; a secret task's
            // arguments stay out of the store.
            let card = "4111 1111 1111 1234"
            let masked = try await scope.runCLI(["send", "mask_card", card, "--queue", scope.queue, "--wait", "20"] + store.arguments)
            #expect(masked.termination == .exited(0), "\(masked)")
            let maskedUUID = try #require(try ResultMessage(body: Array(masked.stdout.utf8), correlationID: nil, contentType: nil).uuid)
            let secret = try await scope.runStoreCLI(["result", maskedUUID, "--wait", "10", "--json"], store: store)
            #expect(secret.termination == .exited(0), "\(secret)")
            #expect(!secret.stdout.contains("4111"), "\(secret)")
            let secretRecord = try JSONDecoder().decode(TaskRecord.self, from: Data(secret.stdout.utf8))
            #expect(secretRecord.arguments?.omitted == true, "\(secret)")
            let failedOnly = try await scope.runStoreCLI(["tasks", "--status", "failed", "--queue", scope.queue, "--json"], store: store)
            #expect(jsonLines(failedOnly.stdout).map { $0["uuid"]?.stringValue } == [uuid], "\(failedOnly)")

            // An error message with terminal escapes (from any producer's
            // task) is printed escaped, never raw.
            let hostile = "clear\u{1B}[2J\rred"
            let sent = try await scope.runCLI(["send", "fail", hostile, "--queue", scope.queue, "--wait", "20"] + store.arguments)
            let hostileUUID = try #require(try ResultMessage(body: Array(sent.stdout.utf8), correlationID: nil, contentType: nil).uuid)
            // send's own message on standard error too.
            #expect(sent.stderr.contains("clear\\u{1B}[2J\\u{D}red"), "\(sent)")
            #expect(!sent.stderr.unicodeScalars.contains { $0.value == 0x1B || $0.value == 0x0D }, "\(sent)")
            for arguments in [["result", hostileUUID, "--wait", "10"], ["tasks", "--status", "failed", "--queue", scope.queue]] {
                let run = try await scope.runStoreCLI(arguments, store: store)
                #expect(run.stdout.contains("clear\\u{1B}[2J\\u{D}red"), "\(arguments): \(run)")
                #expect(!run.stdout.unicodeScalars.contains { $0.value == 0x1B || $0.value == 0x0D }, "\(arguments): \(run)")
            }
        }
    }

    /// Bad usage exits 64 without touching a store; the URL comes from
    /// the flag, its file, the variable or the variable's file.
    @Test func storeCommandsRefuseBadUsageAndReadTheURLFromAFile() async throws {
        let noStore = ["QTASKS_RESULT_STORE": "", "QTASKS_RESULT_STORE_FILE": ""]
        for arguments in [
            ["result", "x"], ["tasks"], ["workers"],
            ["tasks", "--result-store", "memory://", "--status", "bogus"],
            ["tasks", "--result-store", "memory://", "--since", "yesterday"],
            ["tasks", "--result-store", "memory://", "--since", "0"],
            ["result", "x", "--result-store", "ftp://nowhere"],
            ["workers", "--result-store-file", "/nonexistent/qtasks-results-url"],
            ["workers", "--result-store", "memory://", "--result-prefix", "a b"],
        ] {
            let run = try await ChildProcess.run(IntegrationEnvironment.cliExecutable, arguments, environment: noStore)
            #expect(run.termination == .exited(64), "\(arguments): \(run)")
        }
        let unreadable = try await ChildProcess.run(
            IntegrationEnvironment.cliExecutable, ["workers", "--result-store-file", "/nonexistent/qtasks-results-url"],
            environment: noStore)
        #expect(unreadable.stderr.contains("/nonexistent/qtasks-results-url"), "\(unreadable)")

        // memory:// is empty in a new process: nothing listed, exit 0.
        let directory = try StateDirectory()
        defer { directory.remove() }
        let file = directory.path + "/url"
        try "memory://\n".write(toFile: file, atomically: true, encoding: .utf8)
        for (arguments, environment) in [
            (["tasks", "--result-store-file", file, "--status", "failed,cancelled", "--since", "1h30m"], noStore),
            (["workers"], ["QTASKS_RESULT_STORE": "", "QTASKS_RESULT_STORE_FILE": file]),
            (["tasks", "--json"], ["QTASKS_RESULT_STORE": "memory://"]),
        ] {
            let run = try await ChildProcess.run(IntegrationEnvironment.cliExecutable, arguments, environment: environment)
            #expect(run.termination == .exited(0) && run.stdout.isEmpty, "\(arguments): \(run)")
        }

        // A reader never creates a store: a mistyped SQLite path is "cannot
        // reach the store" (4), and no file is left behind.
        let typo = directory.path + "/typo.db"
        for arguments in [["tasks"], ["workers"], ["result", "x", "--wait", "1"]] {
            let run = try await ChildProcess.run(
                IntegrationEnvironment.cliExecutable, arguments + ["--result-store", "sqlite://" + typo], environment: noStore)
            #expect(run.termination == .exited(4) && run.stderr.contains("no such SQLite file"), "\(arguments): \(run)")
        }
        #expect(!FileManager.default.fileExists(atPath: typo))

        // An existing store without the task: "no record" (2), with --wait
        // as without it.
        let existing = directory.path + "/results.db"
        await (try await ResultStores.open(url: "sqlite://" + existing)).close()
        for arguments in [["result", "no-such-task"], ["result", "no-such-task", "--wait", "0.5"]] {
            let run = try await ChildProcess.run(
                IntegrationEnvironment.cliExecutable, arguments + ["--result-store", "sqlite://" + existing], environment: noStore)
            #expect(run.termination == .exited(2), "\(arguments): \(run)")
        }
    }
}

/// The producers' `sent` records: the scheduler's, and a store that cannot
/// be reached does not stop `qtasks send`.
@Suite(.enabled(if: IntegrationEnvironment.enabled, "no RabbitMQ reachable at QTASKS_URL; deploy/test.sh starts one"),
       .timeLimit(.minutes(2)))
struct SentRecordsTests {
    /// The ticks submitted with --result-store are in the store as `new`
    /// (no worker runs), under the uuids the scheduler printed; recorded by
    /// the time it stopped gracefully.
    @Test func schedulerRecordsEachTaskItSubmits() async throws {
        let store = try TestResultStore.sqlite()
        let state = try StateDirectory()
        defer {
            store.remove()
            state.remove()
        }
        try await TestScope.run("res-sched") { scope in
            let scheduler = try scope.spawn(
                SchedulerTests.schedulerExecutable,
                ["--url", IntegrationEnvironment.url, "--state", state.sqliteURL, "--every", "1:add:\(scope.queue):[2,3]"]
                    + store.arguments)
            try await waitUntil("two ticks submitted", timeout: 30) {
                if let ended = scheduler.exitStatus { throw ChildProcessError("the scheduler ended (\(ended)): \(scheduler.stderrTail())") }
                return SchedulerTests.submissions(scheduler).count >= 2
            }
            await scope.stopGracefully(scheduler)
            let submitted = SchedulerTests.submissions(scheduler)
            #expect(submitted.count >= 2, "\(scheduler.standardOutputText)")
            for (_, uuid) in submitted {
                let run = try await scope.runStoreCLI(["result", uuid, "--json"], store: store)
                #expect(run.termination == .exited(3), "recorded, not ended: \(run)")
                let record = try JSONDecoder().decode(TaskRecord.self, from: Data(run.stdout.utf8))
                #expect(record.status == .new && record.taskName == "add" && record.queue == scope.queue, "\(run)")
                #expect(record.events.first?.workerID.hasPrefix("qtasks-scheduler.") == true, "\(run)")
            }
        }
    }

    /// A store that cannot be reached is a warning; the task is sent and
    /// its result printed, exit 0; the warning has no password.
    @Test func sendWarnsButSendsWhenTheStoreIsDown() async throws {
        try await TestScope.run("res-down") { scope in
            _ = try await scope.startWorker()
            // Nothing listens on port 1; an SQLite file in a missing directory.
            for url in ["redis://:hunter2@127.0.0.1:1/0", "sqlite:///nonexistent-\(UUID().uuidString.prefix(8))/results.db"] {
                let run = try await scope.runCLI([
                    "send", "add", "2", "3", "--queue", scope.queue, "--wait", "20", "--result-store", url,
                ])
                #expect(run.termination == .exited(0), "\(run)")
                #expect(run.stdout.contains(#""returning":5"#), "\(run)")
                #expect(run.stderr.contains("cannot open the result store"), "\(run)")
                #expect(!run.stderr.contains("hunter2"), "\(run)")
            }
        }
    }
}
