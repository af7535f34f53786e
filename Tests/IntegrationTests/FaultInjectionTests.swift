import AMQP
import Foundation
import TestSupport
import Synchronization
import Testing

/// The fault-injection suite: real workers and a real RabbitMQ, faults
/// injected from outside. Each scenario prints a `fault-suite` line with
/// its figures (tasks sent, results received, duplicates, lost).
///
/// Scenarios that restart the broker run on a private node
/// (`QTASKS_PRIVATE_RABBITMQ_PORT` + 2, by default 5695; deploy/rabbitmq.sh
/// starts and stops it), never on the shared broker other tests use.
@Suite(
    .enabled(if: IntegrationEnvironment.enabled && PrivateRabbitMQ.available, "needs RabbitMQ installed (deploy/install-deps.sh)"),
    .serialized, .timeLimit(.minutes(5)))
struct BrokerRestartFaultTests {
    static let port = PrivateRabbitMQ.port(offset: 2)

    /// 2,000 tasks with results awaited; the broker restarted when about a
    /// quarter of the results are in. Every task's result arrives (each uuid
    /// at least once) and the worker resumes by itself, without a restart.
    @Test func brokerRestartedMidRunLosesNoResult() async throws {
        let node = try await PrivateRabbitMQ.start(port: Self.port)
        var workerProcess: ChildProcess?
        do {
            try await runRestartScenario(node) { workerProcess = $0 }
        } catch {
            if let workerProcess { await workerProcess.stop(grace: 5) }
            await node.stop()
            throw error
        }
        if let workerProcess { await workerProcess.stop(grace: 5) }
        await node.stop()
    }

    private func runRestartScenario(_ node: PrivateRabbitMQ, started: (ChildProcess) -> Void) async throws {
        let queue = IntegrationEnvironment.uniqueQueue("restart")
        let replies = queue + ".results"
        var configuration = node.configuration
        configuration.heartbeat = .seconds(5)
        let collector = ResultCollector(configuration: configuration, queue: replies)
        defer { collector.stop() }
        let worker = try await FaultWorker.start(
            ["--concurrency", "20", "--prefetch", "100"], url: node.url, queues: [queue]
        ) { executable, arguments, environment in
            try ChildProcess(executable, arguments, environment: environment)
        }
        started(worker)

        let uuids = (0..<2000).map { _ in UUID().uuidString.lowercased() }
        let publisher = TaskPublisher(configuration: configuration)
        // Durable reply queue: it must outlive the restart.
        try await declareDurable(replies, configuration)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for chunk in stride(from: 0, to: uuids.count, by: 100) {
                group.addTask {
                    for uuid in uuids[chunk..<min(chunk + 100, uuids.count)] {
                        try await publisher.publish(
                            #"{"uuid": "\#(uuid)", "task_name": "sleep", "args": [0.005]}"#, to: queue, uuid: uuid,
                            replyTo: replies)
                    }
                }
            }
            try await group.waitForAll()
        }
        await publisher.close()

        try await waitUntil("a quarter of the results", timeout: 60) { collector.total >= 500 }
        let before = collector.total
        try await node.script("restart")
        let restarted = ContinuousClock.now

        try await waitUntil("every task's result after the restart (have \(collector.counts.count) of 2000)", timeout: 120) {
            if let ended = worker.exitStatus { throw ChildProcessError("the worker exited (\(ended)):\n\(worker.stderrTail())") }
            return Set(collector.counts.keys).isSuperset(of: uuids)
        }
        let resumed = ContinuousClock.now - restarted
        // Anything still in flight (a redelivered duplicate) gets a moment.
        try await Task.sleep(for: .milliseconds(500))
        let figures = RunFigures(
            scenario: "broker restart", sent: uuids, counts: collector.counts,
            extra: "results before the restart \(before), all in \(resumed) after it, collector reconnects \(collector.reconnects)")
        figures.print()
        #expect(figures.lost == 0)
        #expect(worker.isRunning, "the worker resumed by itself")
        let log = worker.standardErrorText
        #expect(log.contains("reconnected: consuming again"), "\(worker.stderrTail())")
        #expect(Set(collector.statuses.values) == ["success"])
    }

    private func declareDurable(_ queue: String, _ configuration: AMQPConfiguration) async throws {
        let connection = try await AMQPConnection.connect(configuration)
        try await connection.openChannel().declareQueue(queue, durable: true)
        await connection.close()
    }

    /// A memory alarm raised mid-run blocks the worker's publishing
    /// connection (connection.blocked): results wait, none is lost, and
    /// they all arrive once the alarm clears.
    @Test func resourceAlarmMidRunLosesNoResult() async throws {
        let node = try await PrivateRabbitMQ.start(port: Self.port + 1)
        var workerProcess: ChildProcess?
        do {
            try await runAlarmScenario(node) { workerProcess = $0 }
        } catch {
            _ = try? await node.ctl("set_vm_memory_high_watermark", "0.4")
            if let workerProcess { await workerProcess.stop(grace: 5) }
            await node.stop()
            throw error
        }
        if let workerProcess { await workerProcess.stop(grace: 5) }
        await node.stop()
    }

    private func runAlarmScenario(_ node: PrivateRabbitMQ, started: (ChildProcess) -> Void) async throws {
        let queue = IntegrationEnvironment.uniqueQueue("alarm")
        let replies = queue + ".results"
        let configuration = node.configuration
        try await declareDurable(replies, configuration)
        let collector = ResultCollector(configuration: configuration, queue: replies)
        defer { collector.stop() }
        let worker = try await FaultWorker.start(["--concurrency", "10"], url: node.url, queues: [queue]) {
            try ChildProcess($0, $1, environment: $2)
        }
        started(worker)
        let publisher = TaskPublisher(configuration: configuration)
        let uuids = (0..<400).map { _ in UUID().uuidString.lowercased() }
        // Published before the alarm: publishers are blocked during one.
        // 400 x 0.25 s over 10 slots is 10 s of work: RabbitMQ blocks a
        // connection only when it publishes during the alarm, and raising
        // the alarm (rabbitmqctl) takes seconds itself, so a shorter run
        // could end before the worker publishes a result under the alarm.
        for uuid in uuids {
            try await publisher.publish(
                #"{"uuid": "\#(uuid)", "task_name": "sleep", "args": [0.25]}"#, to: queue, uuid: uuid, replyTo: replies)
        }
        await publisher.close()
        try await waitUntil("the first results", timeout: 30) { collector.total >= 20 }
        try await node.ctl("set_vm_memory_high_watermark", "0.0000001")
        try await waitUntil("the worker to see connection.blocked", timeout: 90) {
            worker.standardErrorText.contains("broker blocked this connection")
        }
        let duringAlarm = collector.total
        try await Task.sleep(for: .seconds(2))
        let stalled = collector.total - duringAlarm
        try await node.ctl("set_vm_memory_high_watermark", "0.4")
        try await waitUntil("every result after the alarm cleared", timeout: 60) {
            Set(collector.counts.keys).isSuperset(of: uuids)
        }
        try await Task.sleep(for: .milliseconds(300))
        let figures = RunFigures(
            scenario: "resource alarm", sent: uuids, counts: collector.counts,
            extra: "results while blocked (2 s) \(stalled)")
        figures.print()
        #expect(figures.lost == 0)
        #expect(worker.standardErrorText.contains("broker unblocked this connection"))
        #expect(worker.isRunning)
    }
}

/// Faults on the shared broker: killed workers, retries to the
/// dead-letter queue, poison messages, time limits, self-cancel, the dlq
/// command.
@Suite(.enabled(if: IntegrationEnvironment.enabled, "no RabbitMQ reachable at QTASKS_URL; deploy/test.sh starts one"),
       .timeLimit(.minutes(5)))
struct WorkerFaultTests {
    /// Two workers SIGKILLed at random moments during a 2,000-task run and
    /// started again: every task completes, and nothing is left ready or
    /// unacknowledged.
    @Test func twoWorkersKilledAtRandomLoseNoTask() async throws {
        try await TestScope.run("sigkill-run") { scope in
            let options = ["--concurrency", "10", "--prefetch", "20"]
            var workers = [try await scope.startFaultWorker(options), try await scope.startFaultWorker(options)]
            let uuids = (0..<2000).map { _ in UUID().uuidString.lowercased() }
            // 2,000 × 40 ms over 2 × 10 slots: about 4 s of work, so the
            // kills land mid-run.
            try await withThrowingTaskGroup(of: Void.self) { group in
                for chunk in stride(from: 0, to: uuids.count, by: 200) {
                    group.addTask {
                        for uuid in uuids[chunk..<min(chunk + 200, uuids.count)] {
                            try await scope.publishTask(
                                #"{"uuid": "\#(uuid)", "task_name": "sleep", "args": [0.04]}"#, correlationID: uuid)
                        }
                    }
                }
                try await group.waitForAll()
            }
            var atKills: [Int] = []
            var counts: [String: Int] = [:]
            func drainReplies() async throws {
                while let delivery = try await scope.admin.get(scope.replyQueue) {
                    counts[delivery.properties.correlationID ?? "?", default: 0] += 1
                }
            }
            var kills = 0
            while kills < 4 {
                try await Task.sleep(for: .milliseconds(Int64.random(in: 300...900)))
                try await drainReplies()
                atKills.append(counts.values.reduce(0, +))
                let victim = Int.random(in: 0..<2)
                workers[victim].signal(SIGKILL)
                _ = await workers[victim].waitForExit(timeout: 10)
                kills += 1
                workers[victim] = try await scope.startFaultWorker(options)
            }
            try await waitUntil("every task's result", timeout: 120) {
                try await drainReplies()
                return Set(counts.keys).isSuperset(of: uuids)
            }
            for worker in workers { await scope.stopGracefully(worker) }
            try await drainReplies()
            let figures = RunFigures(
                scenario: "two workers SIGKILLed 4 times", sent: uuids, counts: counts,
                extra: "results received when each kill came: \(atKills.map(String.init).joined(separator: ", "))")
            figures.print()
            #expect(figures.lost == 0)
            let info = try await scope.admin.queueInfo(scope.queue)
            #expect(info?.messageCount == 0, "nothing left ready")
            #expect(info?.consumerCount == 0)
            // Workers stopped: an unacknowledged message would be ready again.
            if let counts = await sharedBrokerQueueCounts(scope.queue) {
                #expect(counts.ready == 0 && counts.unacked == 0)
            }
            #expect(try await scope.admin.get(scope.deadLetterQueue) == nil)
        }
    }

    /// A task that always fails: retried with backoff held by the broker,
    /// then dead-lettered after exactly --max-attempts runs; no unacked
    /// message while a retry waits; one result, the final one.
    @Test func alwaysFailingTaskReachesTheDLQAfterExactlyMaxAttempts() async throws {
        try await TestScope.run("retries") { scope in
            let worker = try await scope.startFaultWorker(["--max-attempts", "3", "--retry-delay", "3", "--retry-jitter", "0"])
            scope.deleteAtEnd(scope.queue + ".retry.3000")
            scope.deleteAtEnd(scope.queue + ".retry.6000")
            let uuid = UUID().uuidString.lowercased()
            try await scope.publishTask(#"{"uuid": "\#(uuid)", "task_name": "always_fail", "args": ["nope"]}"#, correlationID: uuid)

            // While the first retry waits (3 s, long enough to be seen on a
            // loaded machine): in the retry queue, not held by the worker.
            try await waitUntil("the first retry copy to wait in its retry queue", timeout: 30) {
                try await scope.admin.queueInfo(scope.queue + ".retry.3000")?.messageCount == 1
            }
            #expect(try await scope.admin.queueInfo(scope.queue)?.messageCount == 0)
            var heldWhileWaiting: Int?
            if let counts = await sharedBrokerQueueCounts(scope.queue) { heldWhileWaiting = counts.unacked }

            let reply = try await scope.nextReply(timeout: 60, "the final result")
            #expect(reply.status == "error")
            #expect(reply.object["retry"] == .int(2))
            #expect(reply.traceback == "ExampleError: nope")
            let dead = try await scope.admin.waitForMessage(in: scope.deadLetterQueue, timeout: 10, "the dead letter")
            let headers = dead.properties.headers ?? [:]
            #expect(headers["x-qtasks-attempts"] == .int64(3))
            #expect(headers["x-qtasks-origin-queue"] == .string(scope.queue))
            #expect(headers["x-qtasks-error-type"] == .string("ExampleError"))
            #expect(headers["x-qtasks-first-failed-at"] != nil && headers["x-qtasks-failed-at"] != nil)
            // Exactly one result: no more within a second.
            try await Task.sleep(for: .seconds(1))
            #expect(try await scope.admin.get(scope.replyQueue) == nil)

            let attempts = worker.standardOutputText.split(separator: "\n").compactMap { line -> (Int, Double)? in
                guard line.hasPrefix("always_fail attempt=") else { return nil }
                let fields = line.split(separator: " ")
                guard let attempt = Int(fields[1].dropFirst("attempt=".count)),
                      let at = Double(fields[2].dropFirst("at=".count)) else { return nil }
                return (attempt, at)
            }
            #expect(attempts.map(\.0) == [1, 2, 3])
            let gaps = zip(attempts, attempts.dropFirst()).map { $1.1 - $0.1 }
            // Nominal 3 s and 6 s; RabbitMQ expires TTL'd messages a little
            // late, and a loaded machine adds to that.
            if gaps.count == 2 {
                #expect(gaps[0] >= 2.95 && gaps[0] < 6, "\(gaps)")
                #expect(gaps[1] >= 5.95 && gaps[1] < 10, "\(gaps)")
            }
            print(
                "fault-suite retries: attempts \(attempts.count) (max 3), delays \(gaps.map { String(format: "%.2f", $0) }.joined(separator: ", ")) s "
                    + "(nominal 3, 6), unacked while waiting \(heldWhileWaiting.map(String.init) ?? "n/a"), dead-lettered 1, results 1")
            fflush(nil)
            if let heldWhileWaiting { #expect(heldWhileWaiting == 0) }
            await scope.stopGracefully(worker)
        }
    }

    /// A message that kills its worker (abort) on a quorum queue with
    /// delivery limit 2 (from the queue's policy: `qtasks queues policy
    /// apply --delivery-limit 2`): dead-lettered by RabbitMQ after the
    /// limit, while other tasks keep flowing through restarted workers.
    @Test func poisonMessageIsDeadLetteredAfterTheDeliveryLimit() async throws {
        try await TestScope.run("poison") { scope in
            try await scope.applyQueuePolicy(queueType: "quorum", deliveryLimit: 2)
            let options = ["--queue-type", "quorum", "--delivery-limit", "2", "--concurrency", "1", "--prefetch", "1"]
            var worker = try await scope.startFaultWorker(options)
            let poison = UUID().uuidString.lowercased()
            try await scope.publishTask(#"{"uuid": "\#(poison)", "task_name": "crash"}"#, correlationID: poison)
            var sent: [String] = []
            var counts: [String: Int] = [:]
            var crashes = 0
            let deadline = ContinuousClock.now + .seconds(90)
            while try await scope.admin.queueInfo(scope.deadLetterQueue)?.messageCount ?? 0 == 0 {
                guard ContinuousClock.now < deadline else { throw TimeoutError("the poison message was never dead-lettered") }
                // Other work keeps arriving.
                let uuid = UUID().uuidString.lowercased()
                sent.append(uuid)
                try await scope.publishTask(#"{"uuid": "\#(uuid)", "task_name": "add", "args": [1, 2]}"#, correlationID: uuid)
                if let ended = worker.exitStatus {
                    #expect(ended == .signaled(SIGABRT), "\(worker.stderrTail())")
                    crashes += 1
                    worker = try await scope.startFaultWorker(options)
                }
                try await Task.sleep(for: .milliseconds(200))
            }
            // The last crash may not have been seen yet.
            if await worker.waitForExit(timeout: 1) != nil {
                crashes += 1
                worker = try await scope.startFaultWorker(options)
            }
            try await waitUntil("the other tasks' results", timeout: 60) {
                while let delivery = try await scope.admin.get(scope.replyQueue) {
                    counts[delivery.properties.correlationID ?? "?", default: 0] += 1
                }
                if let ended = worker.exitStatus {
                    crashes += 1
                    Issue.record("the worker died again after the poison was dead-lettered: \(ended)")
                    worker = try await scope.startFaultWorker(options)
                }
                return Set(counts.keys).isSuperset(of: sent)
            }
            let dead = try await scope.admin.waitForMessage(in: scope.deadLetterQueue, timeout: 5, "the poison message")
            #expect(dead.properties.correlationID == poison)
            var reason = "?"
            if case .array(let deaths)? = dead.properties.headers?["x-death"], case .table(let death)? = deaths.first,
               case .string(let why)? = death["reason"] {
                reason = why
            }
            #expect(reason == "delivery_limit")
            #expect(counts[poison] == nil, "no result: it never completed")
            RunFigures(
                scenario: "poison message (quorum, delivery limit 2)", sent: sent, counts: counts,
                extra: "worker crashes \(crashes), poison dead-lettered with reason \(reason)"
            ).print()
            // RabbitMQ dead-letters once a message was returned more often
            // than the limit: limit + 1 deliveries, each a crash.
            #expect(crashes == 3, "crashes \(crashes)")
            await scope.stopGracefully(worker)
        }
    }

    /// A task over its own time limit (limited_sleep: 1 s): error result
    /// with the timeout reason, its task-scoped resource torn down.
    @Test func taskOverItsTimeLimitFailsWithTheReasonAndTearsDownItsResource() async throws {
        try await TestScope.run("timelimit") { scope in
            let worker = try await scope.startFaultWorker([])
            let uuid = UUID().uuidString.lowercased()
            try await scope.publishTask(#"{"uuid": "\#(uuid)", "task_name": "limited_sleep", "args": [30]}"#, correlationID: uuid)
            let reply = try await scope.nextReply(timeout: 15, "the timeout result")
            #expect(reply.status == "error")
            #expect(reply.traceback == "TaskTimeLimitError: task 'limited_sleep' exceeded its time limit of 1 s")
            try await waitUntil("the resource's teardown", timeout: 30) {
                worker.standardOutputText.contains("limited_sleep resource released: error(")
            }
            let output = worker.standardOutputText
            #expect(output.contains("limited_sleep resource acquired"))
            let dead = try await scope.admin.waitForMessage(in: scope.deadLetterQueue, timeout: 5, "the timed-out task")
            #expect(dead.properties.headers?["x-qtasks-error-type"] == .string("TaskTimeLimitError"))
            print("fault-suite time limit: result error with timeout reason, resource torn down, dead-lettered")
            fflush(nil)
            await scope.stopGracefully(worker)
        }
    }

    /// A task cancelling itself: status cancel with its reason, acked, not
    /// retried, not dead-lettered.
    @Test func taskCancellingItselfIsAcknowledgedWithACancelResult() async throws {
        try await TestScope.run("give-up") { scope in
            let worker = try await scope.startFaultWorker(["--max-attempts", "3", "--retry-delay", "0.1"])
            let uuid = UUID().uuidString.lowercased()
            try await scope.publishTask(#"{"uuid": "\#(uuid)", "task_name": "give_up", "args": ["no stock"]}"#, correlationID: uuid)
            let reply = try await scope.nextReply(timeout: 15, "the cancel result")
            #expect(reply.status == "cancel")
            #expect(reply.traceback == "TaskCancellation: no stock")
            await scope.stopGracefully(worker)
            #expect(try await scope.admin.queueInfo(scope.queue)?.messageCount == 0)
            #expect(try await scope.admin.get(scope.deadLetterQueue) == nil)
        }
    }

    /// `qtasks dlq list` names foreign dead letters as their producers do:
    /// Celery's `task`/`id` headers, Dramatiq's `actor_name`/`message_id`,
    /// Taskiq's `task_name`/`task_id` (not the AMQP `message_id` aio-pika
    /// sets); `show --uuid` finds them by those ids.
    @Test func dlqListNamesCeleryDramatiqAndTaskiqTasks() async throws {
        try await TestScope.run("dlq-foreign") { scope in
            let worker = try await scope.startFaultWorker([])
            let celeryID = "celery-" + UUID().uuidString.lowercased()
            let dramatiqID = "dramatiq-" + UUID().uuidString.lowercased()
            let taskiqID = "taskiq-" + UUID().uuidString.lowercased()
            let aioPikaID = "aio-pika-" + UUID().uuidString.lowercased()
            // Tasks no worker knows: each is dead-lettered as it came.
            try await scope.admin.publish(
                Array(#"[[2, 3], {}, {"callbacks": null, "errbacks": null, "chain": null, "chord": null}]"#.utf8), to: scope.queue,
                properties: AMQPProperties(
                    contentType: "application/json", contentEncoding: "utf-8",
                    headers: ["lang": .string("py"), "task": .string("celery.unknown_add"), "id": .string(celeryID),
                              "root_id": .string(celeryID)],
                    deliveryMode: AMQPProperties.persistentDeliveryMode, correlationID: celeryID))
            try await scope.admin.publish(
                Array(#"{"queue_name": "\#(scope.queue)", "actor_name": "dramatiq_unknown", "args": [1], "kwargs": {}, "options": {}, "message_id": "\#(dramatiqID)", "message_timestamp": 1764460800000}"#.utf8),
                to: scope.queue, properties: AMQPProperties(deliveryMode: AMQPProperties.persistentDeliveryMode))
            try await scope.admin.publish(
                Array(#"{"task_id": "\#(taskiqID)", "task_name": "tasks:taskiq_unknown", "labels": {}, "labels_types": {}, "args": [], "kwargs": {}}"#.utf8),
                to: scope.queue,
                properties: AMQPProperties(
                    headers: ["task_id": .string(taskiqID), "task_name": .string("tasks:taskiq_unknown")],
                    deliveryMode: AMQPProperties.persistentDeliveryMode, messageID: aioPikaID))
            try await waitUntil("three dead letters", timeout: 20) {
                try await scope.admin.queueInfo(scope.deadLetterQueue)?.messageCount == 3
            }
            await scope.stopGracefully(worker)

            let list = try await scope.runCLI(["dlq", "list", scope.queue])
            #expect(list.termination == .exited(0), "\(list)")
            let lines = list.stdout.split(separator: "\n").map(String.init)
            for (uuid, name) in [(celeryID, "celery.unknown_add"), (dramatiqID, "dramatiq_unknown"), (taskiqID, "tasks:taskiq_unknown")] {
                let line = lines.first { $0.contains(uuid) }
                #expect(line?.split(separator: "\t").dropFirst().prefix(2).map(String.init) == [uuid, name], "\(list)")
            }
            #expect(!list.stdout.contains(aioPikaID), "Taskiq's task_id, not aio-pika's message_id")

            let show = try await scope.runCLI(["dlq", "show", scope.queue, "--uuid", taskiqID])
            #expect(show.termination == .exited(0), "\(show)")
            #expect(show.stdout.contains("task: tasks:taskiq_unknown"), "\(show)")
            #expect(show.stdout.contains("format: taskiq"), "\(show)")
        }
    }

    /// `qtasks dlq`: list (leaves messages), show, replay (back to the
    /// origin queue, attempts reset), purge.
    @Test func dlqCommandListsShowsReplaysAndPurges() async throws {
        try await TestScope.run("dlq-cli") { scope in
            let worker = try await scope.startFaultWorker([])
            var uuids: [String] = []
            for _ in 0..<3 {
                let uuid = UUID().uuidString.lowercased()
                uuids.append(uuid)
                try await scope.publishTask(#"{"uuid": "\#(uuid)", "task_name": "fail", "args": ["boom"]}"#, correlationID: uuid)
            }
            try await waitUntil("three dead letters", timeout: 20) {
                try await scope.admin.queueInfo(scope.deadLetterQueue)?.messageCount == 3
            }
            await scope.stopGracefully(worker)

            let list = try await scope.runCLI(["dlq", "list", scope.queue])
            #expect(list.termination == .exited(0), "\(list)")
            #expect(list.stdout.contains("\(scope.deadLetterQueue): 3 messages"), "\(list)")
            for uuid in uuids { #expect(list.stdout.contains(uuid)) }
            #expect(list.stdout.contains("ExampleError: boom"))
            #expect(try await scope.admin.queueInfo(scope.deadLetterQueue)?.messageCount == 3, "list leaves them")

            let show = try await scope.runCLI(["dlq", "show", scope.queue, "--uuid", uuids[1]])
            #expect(show.termination == .exited(0), "\(show)")
            #expect(show.stdout.contains("origin queue: \(scope.queue)"))
            #expect(show.stdout.contains(#""task_name": "fail""#))

            let replay = try await scope.runCLI(["dlq", "replay", scope.queue, "--limit", "2"])
            #expect(replay.termination == .exited(0), "\(replay)")
            #expect(replay.stdout.contains("replayed 2 messages"), "\(replay)")
            #expect(try await scope.admin.queueInfo(scope.queue)?.messageCount == 2)
            let replayed = try #require(try await scope.admin.get(scope.queue))
            #expect(replayed.properties.headers?["x-qtasks-attempt"] == nil)
            #expect(replayed.properties.headers?["x-qtasks-error-type"] == nil)

            let refused = try await scope.runCLI(["dlq", "purge", scope.queue])
            #expect(refused.termination == .exited(1), "asks first; stdin is empty, so it declines")
            #expect(refused.stderr.contains("not purged"), "\(refused)")
            #expect(try await scope.admin.queueInfo(scope.deadLetterQueue)?.messageCount == 1)
            let purge = try await scope.runCLI(["dlq", "purge", scope.queue, "--yes"])
            #expect(purge.stdout.contains("purged 1 message"), "\(purge)")
            #expect(try await scope.admin.queueInfo(scope.deadLetterQueue)?.messageCount == 0)
        }
    }
}

/// Hostile input, one test each: rejected with a clear error, no crash,
/// memory bounded.
@Suite(.enabled(if: IntegrationEnvironment.enabled, "no RabbitMQ reachable at QTASKS_URL; deploy/test.sh starts one"),
       .timeLimit(.minutes(3)))
struct HostileInputTests {
    /// The worker's resident memory, from /proc.
    static func residentMegabytes(_ pid: pid_t) -> Double? {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
              let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }),
              let kilobytes = Double(line.split(separator: " ").dropFirst().first ?? "") else { return nil }
        return kilobytes / 1024
    }

    /// A 50 MB body (limit 1 MiB): read off the socket and dropped frame by
    /// frame, never held; error result; RabbitMQ dead-letters the intact
    /// original (through the queue's policy); the worker's memory stays
    /// bounded and it goes on.
    @Test func hugeBodyIsRejectedWithBoundedMemory() async throws {
        try await TestScope.run("huge") { scope in
            try await scope.applyQueuePolicy()
            let worker = try await scope.startFaultWorker(["--max-message-bytes", "1048576"])
            let before = Self.residentMegabytes(worker.pid) ?? 0
            let uuid = UUID().uuidString.lowercased()
            var body = Array(#"{"uuid": "\#(uuid)", "task_name": "echo", "args": [""#.utf8)
            body += [UInt8](repeating: UInt8(ascii: "x"), count: 50 * 1_048_576)
            body += Array(#""]}"#.utf8)
            try await scope.publishTask(body, correlationID: uuid, messageID: uuid)
            let reply = try await scope.nextReply(timeout: 60, "the oversize result")
            #expect(reply.status == "error")
            #expect(reply.traceback?.hasPrefix("TaskInputError: task message body is \(body.count) bytes, over the limit") == true, "\(reply)")
            let after = Self.residentMegabytes(worker.pid) ?? 0
            print(String(format: "fault-suite huge body: 50 MB message rejected; worker RSS %.1f MB before, %.1f MB after", before, after))
            fflush(nil)
            #expect(after - before < 25, "RSS grew from \(before) MB to \(after) MB")
            // Dead-lettered by RabbitMQ with its body intact.
            try await waitUntil("the dead letter", timeout: 20) {
                try await scope.admin.queueInfo(scope.deadLetterQueue)?.messageCount == 1
            }
            // Still working.
            let next = UUID().uuidString.lowercased()
            try await scope.publishTask(#"{"uuid": "\#(next)", "task_name": "add", "args": [2, 3]}"#, correlationID: next)
            let ok = try await scope.nextReply(timeout: 20, "a normal task after the huge one")
            #expect(ok.returning == .int(5))
            #expect(worker.isRunning)
            await scope.stopGracefully(worker)
        }
    }

    func expectRejected(_ json: String, _ what: String, traceback expected: String) async throws {
        try await TestScope.run(what) { scope in
            let worker = try await scope.startFaultWorker([])
            let uuid = UUID().uuidString.lowercased()
            try await scope.publishTask(Array(json.utf8), correlationID: uuid, messageID: uuid)
            let reply = try await scope.nextReply(timeout: 20, what)
            #expect(reply.status == "error")
            #expect(reply.traceback?.contains(expected) == true, "\(reply)")
            _ = try await scope.admin.waitForMessage(in: scope.deadLetterQueue, timeout: 10, "\(what) dead-lettered")
            #expect(worker.isRunning)
            await scope.stopGracefully(worker)
        }
    }

    @Test func deeplyNestedJSON() async throws {
        let nested = String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000)
        try await expectRejected(
            #"{"task_name": "echo", "args": \#(nested)}"#, "nested",
            traceback: "TaskInputError: task message JSON nests deeper than 512 levels")
    }

    @Test func invalidUTF8() async throws {
        try await TestScope.run("utf8") { scope in
            let worker = try await scope.startFaultWorker([])
            let uuid = UUID().uuidString.lowercased()
            try await scope.publishTask(Array(#"{"task_name": "echo", "args": [""#.utf8) + [0xC3, 0x28, 0xFF] + Array(#""]}"#.utf8), correlationID: uuid, messageID: uuid)
            let reply = try await scope.nextReply(timeout: 20, "invalid UTF-8")
            #expect(reply.traceback == "TaskInputError: task message body is not valid UTF-8", "\(reply)")
            #expect(worker.isRunning)
            await scope.stopGracefully(worker)
        }
    }

    @Test func wrongTypeInArgs() async throws {
        try await expectRejected(
            #"{"task_name": "add", "args": ["two", 3]}"#, "args-type", traceback: "TaskInputError: add() argument 1 ('a')")
    }

    @Test func wrongTypeInKwargs() async throws {
        try await expectRejected(
            #"{"task_name": "add", "kwargs": {"a": [1], "b": 3}}"#, "kwargs-type", traceback: "TaskInputError: add()")
    }

    @Test func kwargsThatAreNotAnObject() async throws {
        try await expectRejected(#"{"task_name": "add", "kwargs": [1, 2]}"#, "kwargs-shape", traceback: "TaskInputError: kwargs")
    }

    @Test func nonNumericPriority() async throws {
        try await expectRejected(
            #"{"task_name": "add", "args": [1, 2], "priority": "high"}"#, "priority",
            traceback: "TaskInputError: priority must be an integer, found string")
    }
}
