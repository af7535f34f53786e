import Foundation
import QTasks
import QTasksState
import QTasksStateStores
import Testing

/// The seed's State example (`step1`, `step2` in qtasks-example) on the real
/// broker: the two steps run in two different worker processes that share a
/// backend, an SQLite file and then Redis.
@Suite(.enabled(if: IntegrationEnvironment.enabled, "no RabbitMQ reachable at QTASKS_URL; deploy/test.sh starts one"),
       .timeLimit(.minutes(2)))
struct StateWorkerTests {
    /// What step2 prints: the seed's line, Cyrillic unescaped.
    static let seedLine = #"{"state": "await_phone", "step": 1, "prompt": "Введите телефон"}"#

    /// SQLite: step1 on a worker that is then stopped (closing the store),
    /// step2 on a second worker process started afterwards. The first worker
    /// gets the URL from --state, the second from QTASKS_STATE_URL; the
    /// steps are called with no argument, exactly as in the seed.
    @Test func stepsOnTwoWorkerProcessesShareAnSQLiteFile() async throws {
        let directory = try StateDirectory()
        defer { directory.remove() }
        let url = directory.sqliteURL
        try await TestScope.run("state-sqlite") { scope in
            let first = try await scope.startWorker(on: scope.queue, arguments: ["--state", url])
            #expect(first.standardErrorText.contains("state=sqlite://\(directory.path)/state.db"), "\(first.stderrTail())")
            let step1 = try await scope.call("step1", on: scope.queue)
            step1.expectDocumented(uuid: nil, taskName: "step1", status: "success", returning: "ok")
            await scope.stopGracefully(first)

            // What step1 wrote, as the operator's tool sees it.
            let shown = try await runStateCLI(["state", "get", "MyState", "--state", url])
            #expect(shown.termination == .exited(0), "\(shown)")
            #expect(shown.stdout == #"{"prompt":"Введите телефон","state":"await_phone","step":1}"# + "\n", "\(shown)")

            let second = try await scope.startWorker(on: scope.queue, environment: ["QTASKS_STATE_URL": url])
            let step2 = try await scope.call("step2", on: scope.queue)
            step2.expectDocumented(uuid: nil, taskName: "step2", status: "success", returning: "ok")
            try await waitUntil("step2's line on the second worker's stdout", timeout: 30) {
                second.standardOutputText.contains(Self.seedLine)
            }
            #expect(second.standardOutputText == Self.seedLine + "\n", "exactly the seed's line:\n\(second.standardOutputText)")
            #expect(!first.standardOutputText.contains("await_phone"), "step2 did not run on the first worker")
            await scope.stopGracefully(second)

            // step2 cleared the state.
            let store = try await StateStores.open(url: url)
            #expect(try await store.getAll(in: StateID(namespace: "MyState")) == [:])
            await store.close()
        }
    }

    /// Redis: two worker processes running at once on two queues; step1 on
    /// the first, step2 on the second, for one user key (so that parallel
    /// runs against the same Redis never meet).
    @Test(.enabled(if: IntegrationRedis.enabled, "no Redis at QTASKS_REDIS_URL; deploy/redis.sh start"))
    func stepsOnTwoWorkerProcessesShareRedis() async throws {
        let user = "it-\(UUID().uuidString.prefix(8).lowercased())"
        let url = IntegrationRedis.url
        try await TestScope.run("state-redis") { scope in
            let otherQueue = scope.queue + "-b"
            scope.deleteAtEnd(otherQueue)
            scope.deleteAtEnd(otherQueue + ".dlq")
            let first = try await scope.startWorker(on: scope.queue, arguments: ["--state", url])
            let second = try await scope.startWorker(on: otherQueue, environment: ["QTASKS_STATE_URL": url])

            let step1 = try await scope.call("step1", args: #"["\#(user)"]"#, on: scope.queue)
            step1.expectDocumented(uuid: nil, taskName: "step1", status: "success", returning: "ok")
            let store = try await StateStores.open(url: url)
            let id = StateID(namespace: "MyState", key: user)
            #expect(try await store.getAll(in: id) == ["state": "await_phone", "step": 1, "prompt": "Введите телефон"])

            let step2 = try await scope.call("step2", args: #"["\#(user)"]"#, on: otherQueue)
            step2.expectDocumented(uuid: nil, taskName: "step2", status: "success", returning: "ok")
            try await waitUntil("step2's line on the second worker's stdout", timeout: 30) {
                second.standardOutputText.contains(Self.seedLine)
            }
            #expect(second.standardOutputText == Self.seedLine + "\n", "exactly the seed's line:\n\(second.standardOutputText)")
            #expect(first.standardOutputText.isEmpty, "step2 ran on the second worker only: \(first.standardOutputText)")
            #expect(try await store.getAll(in: id) == [:], "step2 cleared the state")
            try? await store.clear(id)
            await store.close()

            // Once cleared, step2 again returns "error", as in the seed.
            let again = try await scope.call("step2", args: #"["\#(user)"]"#, on: otherQueue)
            again.expectDocumented(uuid: nil, taskName: "step2", status: "success", returning: "error")
            await scope.stopGracefully(first)
            await scope.stopGracefully(second)
        }
    }

    /// A malformed --state stops the worker at startup with status 64 and a
    /// message that names the problem, never the password.
    @Test func aMalformedStateURLStopsTheWorkerAtStartup() async throws {
        for (url, expected) in [
            ("mysql://localhost/db", "unknown State backend scheme 'mysql'"),
            ("redis://:hunter2@127.0.0.1:6379/zero", "must be a database number"),
        ] {
            let run = try await ChildProcess.run(
                IntegrationEnvironment.workerExecutable, ["--url", IntegrationEnvironment.url, "--state", url], timeout: 20)
            #expect(run.termination == .exited(64), "\(run)")
            #expect(run.stderr.contains(expected), "\(run)")
            #expect(!run.stderr.contains("hunter2"), "the password is not printed: \(run)")
        }
    }

    /// A backend that cannot be reached fails only the tasks that use
    /// State, with an error result naming the dependency and the server,
    /// after the transient-error retries (two here: about 3 s); the worker
    /// keeps running its other tasks.
    @Test func anUnreachableStateBackendFailsOnlyTheTasksThatUseIt() async throws {
        try await TestScope.run("state-down") { scope in
            let worker = try await scope.startWorker(
                on: scope.queue, arguments: ["--state", "redis://:hunter2@127.0.0.1:1/0", "--transient-retries", "2"])
            let step1 = try await scope.call("step1", on: scope.queue)
            step1.expectDocumented(
                uuid: nil, taskName: "step1", status: "error",
                tracebackContains: ["dependency 'state store' failed", "127.0.0.1:1", "still failing after 2 transient-error retries"],
                retry: 2)
            #expect(step1.traceback?.contains("hunter2") == false, "\(step1)")
            let add = try await scope.call("add", args: "[2, 3]", on: scope.queue)
            add.expectDocumented(uuid: nil, taskName: "add", status: "success", returning: 5)
            _ = try await scope.admin.waitForMessage(in: scope.deadLetterQueue, timeout: 10, "the failed step1")
            await scope.stopGracefully(worker)
        }
    }
}
