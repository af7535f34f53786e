import Foundation
import QTasksState
import QTasksStateStores
import Testing

/// Periodic tasks (`qtasks-scheduler`, docs/scheduling.md) on the real broker.
@Suite(.enabled(if: IntegrationEnvironment.enabled, "no RabbitMQ reachable at QTASKS_URL; deploy/test.sh starts one"),
       .timeLimit(.minutes(2)))
struct SchedulerTests {
    static var schedulerExecutable: String {
        IntegrationEnvironment.productsDirectory.appendingPathComponent("qtasks-scheduler").path
    }

    /// The `submitted TICK UUID TASK QUEUE` lines a scheduler printed.
    static func submissions(_ process: ChildProcess) -> [(tick: Int64, uuid: String)] {
        process.standardOutputText.split(separator: "\n").compactMap { line in
            let fields = line.split(separator: " ")
            guard fields.count == 5, fields[0] == "submitted", let tick = Int64(fields[1]) else { return nil }
            return (tick, String(fields[2]))
        }
    }

    /// The Must-show: two scheduler processes sharing one SQLite State file,
    /// both running `--every 1` for the same 10 ticks (`--from F --until
    /// F+10`: ticks F ... F+9, F a few seconds after both are started), then
    /// exiting by themselves. The queue holds exactly 10 tasks, one per tick,
    /// all uuids distinct, and each was printed by exactly one process.
    @Test func twoSchedulersSubmitEachOfTenTicksOnce() async throws {
        let directory = try StateDirectory()
        defer { directory.remove() }
        try await twoSchedulersSubmitEachOfTenTicksOnce(stateURL: directory.sqliteURL)
    }

    /// The same with Redis as the shared State backend (the claim key is
    /// cleared at the end).
    @Test(.enabled(if: IntegrationRedis.enabled, "no Redis at QTASKS_REDIS_URL; deploy/redis.sh start"))
    func twoSchedulersSharingRedisSubmitEachOfTenTicksOnce() async throws {
        try await twoSchedulersSubmitEachOfTenTicksOnce(stateURL: IntegrationRedis.url)
    }

    func twoSchedulersSubmitEachOfTenTicksOnce(stateURL: String) async throws {
        try await TestScope.run("sched") { scope in
            // Room for both schedulers to start before the first tick: 4 s
            // was not enough on a loaded 2-core machine (a start took longer
            // in a broad run), which failed the precondition below.
            let from = Int64(Date().timeIntervalSince1970.rounded(.down)) + 12
            let until = from + 10
            let arguments = [
                "--url", IntegrationEnvironment.url, "--state", stateURL,
                "--every", "1:add:\(scope.queue):[2,3]", "--from", String(from), "--until", String(until),
            ]
            let schedulers = try (0..<2).map { _ in try scope.spawn(Self.schedulerExecutable, arguments) }
            try await waitUntil("both schedulers to log 'scheduler started'", timeout: 11) {
                for process in schedulers {
                    if let ended = process.exitStatus {
                        throw ChildProcessError("a scheduler ended early (\(ended)):\n\(process.stderrTail())")
                    }
                }
                return schedulers.allSatisfy { $0.standardErrorText.contains("scheduler started") }
            }
            #expect(Date().timeIntervalSince1970 < Double(from), "both schedulers were up before the first tick")

            for process in schedulers {
                let ended = await process.waitForExit(timeout: Double(until) - Date().timeIntervalSince1970 + 10)
                #expect(ended == .exited(0), "scheduler after --until:\n\(process.stderrTail())")
            }

            let printed = schedulers.flatMap(Self.submissions)
            #expect(printed.map(\.tick).sorted() == Array(from..<until), "each tick printed by exactly one process: \(printed)")
            let perProcess = schedulers.map { Self.submissions($0).count }
            print("scheduler test (\(stateURL.prefix(6))): ticks \(from)..<\(until), submitted per process: \(perProcess)")

            let info = try await scope.admin.queueInfo(scope.queue)
            #expect(info?.messageCount == 10, "tasks in the queue: \(String(describing: info))")
            var uuids: [String] = []
            while let delivery = try await scope.admin.get(scope.queue) {
                let object = try JSONSerialization.jsonObject(with: Data(delivery.body)) as? [String: Any]
                #expect(object?["task_name"] as? String == "add")
                #expect(object?["args"] as? [Int] == [2, 3])
                uuids.append(object?["uuid"] as? String ?? "?")
                #expect(delivery.properties.messageID == object?["uuid"] as? String)
            }
            #expect(uuids.count == 10)
            #expect(Set(uuids).count == 10, "no duplicates: \(uuids)")
            #expect(Set(uuids) == Set(printed.map(\.uuid)))

            // The entry's claim and status (docs/scheduling.md): last_tick is
            // the last tick, sent by the process that printed it (host:pid);
            // then removed (a shared Redis outlives the test).
            let store = try await StateStores.open(url: stateURL)
            let claim = StateID(namespace: "qtasks-schedule", key: "add@\(scope.queue)@every 1s")
            var document = try await store.getAll(in: claim)
            let submittedAt = document.removeValue(forKey: "last_submitted_at")?.doubleValue ?? 0
            #expect(Double(until - 1) <= submittedAt && submittedAt <= Date().timeIntervalSince1970, "\(submittedAt)")
            let sender = schedulers.first { Self.submissions($0).contains { $0.tick == until - 1 } }
            let senderID = sender.map { "\(ProcessInfo.processInfo.hostName):\($0.pid)" } ?? "?"
            #expect(document == [
                "last_tick": .int(until - 1), "next_tick": .int(until), "task_name": "add",
                "queue": .string(scope.queue), "schedule": "every 1s", "last_submitted_by": .string(senderID),
            ])
            try await store.clear(claim)
            await store.close()
        }
    }

    /// Two schedulers with JSON logs and metrics endpoints sharing one
    /// State file: read between two ticks (they fire on whole seconds),
    /// each process's `qtasks_scheduler_ticks_total{outcome="submitted"}`
    /// equals the submissions it printed, each tick the other one saw was
    /// `claimed_elsewhere` for it, and every log line is a JSON object.
    @Test func schedulerMetricsCountEachTickOnceAcrossProcesses() async throws {
        let directory = try StateDirectory()
        defer { directory.remove() }
        try await TestScope.run("sched-metrics") { scope in
            let arguments = [
                "--url", IntegrationEnvironment.url, "--state", directory.sqliteURL,
                "--every", "1:add:\(scope.queue):[1,1]", "--log-format", "json", "--metrics-port", "0",
            ]
            let schedulers = try (0..<2).map { _ in try scope.spawn(Self.schedulerExecutable, arguments) }
            var ports: [Int] = []
            for process in schedulers { ports.append(try await ObservabilityTests.metricsPort(of: process)) }
            try await waitUntil("4 ticks submitted", timeout: 20) { schedulers.flatMap(Self.submissions).count >= 4 }
            // To a quarter past a whole second: no tick fires while reading.
            let now = Date().timeIntervalSince1970
            let wait = (now.rounded(.down) + 1.25 - now).truncatingRemainder(dividingBy: 1)
            try await Task.sleep(for: .milliseconds(Int64(wait * 1000)))
            var counters: [(submitted: Double, elsewhere: Double)] = []
            for port in ports {
                let samples = ObservabilityTests.parse(try await ObservabilityTests.scrape(port: port).text)
                func total(_ outcome: String) -> Double {
                    samples.filter { $0.key.name == "qtasks_scheduler_ticks_total" && $0.key.labels["outcome"] == outcome }
                        .map(\.value).reduce(0, +)
                }
                counters.append((total("submitted"), total("claimed_elsewhere")))
            }
            let printed = schedulers.map(Self.submissions)
            #expect(counters.map(\.submitted) == printed.map { Double($0.count) }, "\(counters) \(printed)")
            let ticks = Set(printed.flatMap { $0.map(\.tick) })
            #expect(ticks.count == printed.map(\.count).reduce(0, +), "no tick sent twice: \(printed)")
            #expect(counters.allSatisfy { $0.submitted + $0.elsewhere >= Double(ticks.count) - 1 }, "\(counters), ticks \(ticks.count)")
            for process in schedulers {
                await scope.stopGracefully(process)
                let lines = ObservabilityTests.jsonLines(process.standardErrorText)
                #expect(lines.contains { $0["message"] as? String == "metrics endpoint listening" })
                #expect(lines.contains { $0["message"] as? String == "scheduler started" })
            }
        }
    }

    /// SIGTERM stops a scheduler with status 0; a bad cron expression is a
    /// usage error (64).
    @Test func stopsOnSigtermAndRejectsBadCron() async throws {
        let directory = try StateDirectory()
        defer { directory.remove() }
        try await TestScope.run("sched-stop") { scope in
            let scheduler = try scope.spawn(
                Self.schedulerExecutable,
                ["--url", IntegrationEnvironment.url, "--state", directory.sqliteURL, "--cron", "*/5 * * * *:add:\(scope.queue)"])
            try await waitUntil("the scheduler to start", timeout: 30) {
                if let ended = scheduler.exitStatus { throw ChildProcessError("ended early (\(ended)):\n\(scheduler.stderrTail())") }
                return scheduler.standardErrorText.contains("scheduler started")
            }
            await scope.stopGracefully(scheduler)

            let bad = try await ChildProcess.run(
                Self.schedulerExecutable, ["--state", directory.sqliteURL, "--cron", "61 * * * *:add"], timeout: 10)
            #expect(bad.termination == .exited(64), "\(bad)")
        }
    }
}
