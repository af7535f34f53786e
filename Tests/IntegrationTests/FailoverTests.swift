import AMQP
import Foundation
import QTasks
import QTasksRabbitMQ
import Testing
import TestSupport

/// A broker URL that is a list of nodes (`url1;url2`): parsing, and the
/// worker passing over nodes that do not answer.
@Suite(.enabled(if: IntegrationEnvironment.enabled, "no RabbitMQ reachable at QTASKS_URL; deploy/test.sh starts one"),
       .serialized, .timeLimit(.minutes(4)))
struct FailoverListTests {
    /// Two local ports nothing listens on: connecting to them is refused at
    /// once.
    static let closedPorts: [Int] = {
        let base = IntegrationEnvironment.configuration.port
        var closed: [Int] = []
        for port in (base + 101)...(base + 300) where closed.count < 2 {
            if !TCPPort.isOpen(host: "127.0.0.1", port: port, timeout: 0.5) { closed.append(port) }
        }
        return closed
    }()

    static func closedURL(_ index: Int, password: String = "guest") -> String {
        "amqp://guest:\(password)@127.0.0.1:\(closedPorts[index])/%2F"
    }

    @Test func aURLListKeepsItsOrderAndEachEntrysSettings() throws {
        let configuration = try RabbitMQBrokerConfiguration(
            url: "amqp://a:pa@node1:5701/%2F?heartbeat=7;amqp://b:pb@node2:5702/vh; amqp://node3")
        #expect(configuration.endpoints.map(\.host) == ["node1", "node2", "node3"])
        #expect(configuration.endpoints.map(\.port) == [5701, 5702, 5672])
        #expect(configuration.endpoints.map(\.heartbeat) == [7, 60, 60].map { .seconds($0) })
        #expect(configuration.failoverConnections.map(\.virtualHost) == ["vh", "/"])
        #expect(configuration.redactedURL == "amqp://a:***@node1:5701/%2F;amqp://b:***@node2:5702/vh;amqp://guest:***@node3:5672/%2F")
        #expect(try RabbitMQBrokerConfiguration(url: "amqp://h").failoverConnections.isEmpty)
        // Entries on lines of their own (a pasted list).
        #expect(try RabbitMQBrokerConfiguration(url: "amqp://h1;\n amqp://h2\n").endpoints.map(\.host) == ["h1", "h2"])
    }

    /// A `;` not followed by `scheme://` is part of the URL before it: a
    /// password holding one parses, and is never cut into a "URL" of its
    /// own that an error message would print.
    @Test func aSemicolonInAPasswordStaysInThePassword() throws {
        let one = try RabbitMQBrokerConfiguration(url: "amqp://guest:SECRET;x@127.0.0.1:5880/%2F")
        #expect(one.endpoints.count == 1)
        #expect(one.connection.password == "SECRET;x" && one.connection.port == 5880)
        let two = try RabbitMQBrokerConfiguration(url: "amqp://alice:123;SECRETPW@h1/%2F;amqp://bob:x;y;z@h2/%2F")
        #expect(two.endpoints.map(\.password) == ["123;SECRETPW", "x;y;z"])
        #expect(two.endpoints.map(\.host) == ["h1", "h2"])
        #expect(!two.redactedURL.contains("SECRET") && !two.redactedURL.contains("x;y"))
    }

    @Test("A bad entry in a list is named by its position, its password hidden", arguments: [
        ("amqp://u:secret1@h1;;amqp://h3", "broker URL 2 of 3 is empty"),
        ("amqp://u:secret1@h1;", "broker URL 2 of 2 is empty"),
        ("amqp://h1;http://u:secret2@h2", "broker URL 2 of 2: invalid AMQP URL 'http://u:***@h2'"),
        ("", "broker URL is empty"),
        // No scheme: the whole entry is the authority, its password hidden.
        ("guest:SECRET;x@127.0.0.1:5880/%2F", "invalid AMQP URL 'guest:***@127.0.0.1:5880/%2F'"),
        ("amqp://h1;guest:SECRET@h2:99999\n", "invalid AMQP URL 'amqp://h1;guest:***@h2:99999'"),
        ("amqp://h1\u{7}x", "invalid AMQP URL 'amqp://h1\\u{07}x'"),
    ])
    func aBadEntryIsNamed(url: String, message: String) {
        #expect {
            try RabbitMQBrokerConfiguration(url: url)
        } throws: { error in
            let text = "\(error)"
            return (error as? AMQPError)?.code == .invalidArgument && text.contains(message)
                && !text.lowercased().contains("secret") && !text.contains("\n")
        }
    }

    @Test func redactHidesEveryPasswordOfAList() {
        #expect(AMQPConfiguration.redact("amqp://a:p1@h1/%2F;amqp://b:p2@h2/%2F") == "amqp://a:***@h1/%2F;amqp://b:***@h2/%2F")
        // A raw ';' or '@' in a password must not leak the password's tail.
        #expect(AMQPConfiguration.redact("amqp://a:pa;ss@h1") == "amqp://a:***@h1")
        #expect(AMQPConfiguration.redact("amqp://a:p@ss@h1;amqp://b:x;y@h2") == "amqp://a:***@h1;amqp://b:***@h2")
        // Without a scheme, before one, and with no password at all.
        #expect(AMQPConfiguration.redact("guest:pw;x@h") == "guest:***@h")
        #expect(AMQPConfiguration.redact("guest:pw@h;amqp://u:p@h2") == "guest:***@h;amqp://u:***@h2")
        #expect(AMQPConfiguration.redact("amqp://h1;amqp://h2") == "amqp://h1;amqp://h2")
    }

    /// The first node refuses connections: the worker connects to the
    /// second, says so, and runs tasks.
    @Test func theWorkerPassesOverANodeThatDoesNotAnswer() async throws {
        try #require(Self.closedPorts.count >= 2)
        try await TestScope.run("failover-list") { scope in
            let url = Self.closedURL(0) + ";" + IntegrationEnvironment.url
            let worker = try await scope.startFaultWorker([], url: url)
            let uuid = UUID().uuidString.lowercased()
            try await scope.publishTask(#"{"uuid": "\#(uuid)", "task_name": "add", "args": [20, 22]}"#, correlationID: uuid)
            let reply = try await scope.nextReply(timeout: 20, "the result through the second node")
            reply.expectDocumented(uuid: uuid, taskName: "add", status: "success", returning: 42)
            let log = worker.standardErrorText
            #expect(log.contains("cannot connect to this node; trying the next"), "\(worker.stderrTail())")
            #expect(log.contains("127.0.0.1:\(Self.closedPorts[0])"))
            #expect(log.contains("connected to RabbitMQ"))
        }
    }

    /// After a loss the worker starts with the node after the lost one,
    /// even when the lost one is up again at once: a node that just dropped
    /// its clients (or hangs) is tried last. Here the first node is a
    /// private one that closes every connection (rabbitmqctl
    /// close_all_connections) and stays up; the worker reconnects to the
    /// second, the shared broker, and runs a task there.
    @Test(.enabled(if: PrivateRabbitMQ.available, "needs RabbitMQ installed (deploy/install-deps.sh)"))
    func aReconnectStartsWithTheNodeAfterTheLostOne() async throws {
        let node = try await PrivateRabbitMQ.start(port: PrivateRabbitMQ.port(offset: 1))
        do {
            try await TestScope.run("failover-next") { scope in
                let shared = IntegrationEnvironment.configuration
                let url = node.url + ";amqp://guest:guest@localhost:\(shared.port)/%2F?heartbeat=5"
                let worker = try await scope.startFaultWorker([], url: url)
                #expect(worker.standardErrorText.contains("url=amqp://guest:***@127.0.0.1:\(node.port)/"))
                try await node.ctl("close_all_connections", "failover test")
                try await waitUntil("the worker to consume again", timeout: 30) {
                    worker.standardErrorText.contains("reconnected: consuming again")
                }
                let log = worker.standardErrorText
                let afterLoss = log[(log.range(of: "connection lost")?.upperBound ?? log.startIndex)...]
                let connects = afterLoss.split(separator: "\n").filter { $0.contains("connected to RabbitMQ") }
                #expect(connects.contains { $0.contains("url=amqp://guest:***@localhost:\(shared.port)/") }, "\(worker.stderrTail())")
                #expect(!connects.contains { $0.contains("127.0.0.1:\(node.port)") }, "the lost node was tried first again")
                let uuid = UUID().uuidString.lowercased()
                try await scope.publishTask(#"{"uuid": "\#(uuid)", "task_name": "add", "args": [1, 2]}"#, correlationID: uuid)
                let reply = try await scope.nextReply(timeout: 20, "the result through the second node")
                reply.expectDocumented(uuid: uuid, taskName: "add", status: "success", returning: 3)
            }
        } catch {
            await node.stop()
            throw error
        }
        await node.stop()
    }

    /// The only node stops while `qtasks send --count` sends: the send fails
    /// for good after its retries, and the summary still accounts for every
    /// task sent before the failure (here their results are lost with the
    /// reply queue, which lived on that node): exit 4, no silent gap.
    @Test(.enabled(if: PrivateRabbitMQ.available, "needs RabbitMQ installed (deploy/install-deps.sh)"))
    func aSendThatFailsForGoodStillAccountsForTheTasksSentBeforeIt() async throws {
        let node = try await PrivateRabbitMQ.start(port: PrivateRabbitMQ.port(offset: 1))
        do {
            let queue = IntegrationEnvironment.uniqueQueue("send-fails")
            let send = try ChildProcess(
                IntegrationEnvironment.cliExecutable,
                ["send", "--url", node.url, "--queue", queue, "--count", "200000", "--wait", "30", "add", "1", "2"])
            try await waitUntil("the first sends", timeout: 60) {
                if let ended = send.exitStatus { throw ChildProcessError("ended early (\(ended)): \(send.stderrTail())") }
                return send.standardErrorText.contains("sent: ")
            }
            try await node.script("stop")
            guard let ended = await send.waitForExit(timeout: 120) else {
                throw ChildProcessError("qtasks send did not end: \(send.stderrTail())")
            }
            let output = send.standardOutputText
            #expect(ended == .exited(4), "\(output)\n\(send.stderrTail())")
            let sent = output.firstMatch(of: /sent (\d+) of 200000 tasks before the failure/).flatMap { Int($0.1) }
            let sentCount = try #require(sent, "\(output)")
            #expect(sentCount > 0)
            let lost = output.firstMatch(of: /results lost with a reply queue: (\d+)/).flatMap { Int($0.1) }
            let received = output.firstMatch(of: /results: (\d+) received/).flatMap { Int($0.1) }
            #expect(lost != nil && received != nil, "the results of the tasks sent are summarized: \(output)")
            if let lost, let received { #expect(lost + received <= sentCount && lost + received > 0, "\(output)") }
        } catch {
            await node.stop()
            throw error
        }
        await node.stop()
    }

    /// No node answers: the error names every node and why, and no password.
    @Test func noNodeAnsweringNamesEachNode() async throws {
        try #require(Self.closedPorts.count >= 2)
        let url = Self.closedURL(0, password: "hunter2") + ";" + Self.closedURL(1, password: "hunter3")
        let broker = try RabbitMQBroker(url: url)
        do {
            try await broker.connect()
            Issue.record("connected to nothing")
        } catch let error as BrokerError {
            let text = "\(error)"
            #expect(error.code == .connectionFailed)
            #expect(text.contains("no node of 2 accepted a connection"), "\(text)")
            #expect(text.contains(":\(Self.closedPorts[0])/") && text.contains(":\(Self.closedPorts[1])/"), "\(text)")
            #expect(!text.contains("hunter"), "\(text)")
        }
        await broker.close()

        // The worker executable exits 4 with the same account, on standard error.
        let run = try await ChildProcess.run(IntegrationEnvironment.workerExecutable, ["--url", url], timeout: 60)
        #expect(run.termination == .exited(4), "\(run.stderr)")
        #expect(run.stderr.contains("no node of 2 accepted a connection"), "\(run.stderr)")
        #expect(!run.stderr.contains("hunter"), "\(run.stderr)")
    }
}

/// A three-node cluster (deploy/rabbitmq-cluster.sh), quorum queues, the
/// node the worker uses stopped in the middle of a run: every task's result
/// arrives and the worker goes on through a surviving node of its list.
@Suite(
    .enabled(if: IntegrationEnvironment.enabled && PrivateRabbitMQ.available, "needs RabbitMQ installed (deploy/install-deps.sh)"),
    .serialized, .timeLimit(.minutes(6)))
struct ClusterFailoverTests {
    @Test func nodeStoppedMidRunLosesNoTask() async throws {
        try await withOwnCluster { cluster, started in try await runScenario(cluster, started: started) }
    }

    /// Starts a cluster of its own, runs `body`, then stops every process
    /// `body` reported started and the cluster (deleting its data), also
    /// when `body` throws.
    private func withOwnCluster(
        _ body: (RabbitMQCluster, (ChildProcess) -> Void) async throws -> Void
    ) async throws {
        let cluster = RabbitMQCluster()
        // The test stops a node and then the whole cluster, deleting its
        // data: never do that to a cluster someone else started.
        if try await cluster.isRunning() {
            throw ChildProcessError(
                "a RabbitMQ cluster already runs on 127.0.0.1:\(cluster.port(1))-\(cluster.port(3)); this test starts, "
                    + "breaks and deletes its own: stop that one (deploy/rabbitmq-cluster.sh stop with "
                    + "QTASKS_CLUSTER_RABBITMQ_PORT=\(cluster.base)) or test with another QTASKS_RABBITMQ_PORT")
        }
        do {
            try await cluster.run("start", timeout: 240)
        } catch {
            // A half-started cluster is ours too: it must not outlive the test.
            _ = try? await cluster.run("stop", timeout: 120)
            throw error
        }
        var processes: [ChildProcess] = []
        do {
            try await body(cluster) { processes.append($0) }
        } catch {
            for process in processes { await process.stop(grace: 5) }
            _ = try? await cluster.run("stop", timeout: 120)
            throw error
        }
        for process in processes { await process.stop(grace: 5) }
        try await cluster.run("stop", timeout: 120)
    }

    private func runScenario(_ cluster: RabbitMQCluster, started: (ChildProcess) -> Void) async throws {
        let queue = IntegrationEnvironment.uniqueQueue("cluster")
        let replies = queue + ".results"
        let endpoints = cluster.endpoints
        let quorum: AMQPTable = ["x-queue-type": "quorum"]
        // Declared before any task: a result for a missing reply queue is dropped.
        let setup = try await AMQPConnection.connect(endpoints[0])
        try await setup.openChannel().declareQueue(replies, durable: true, arguments: quorum)
        await setup.close()
        let collector = ResultCollector(endpoints: endpoints, queue: replies, arguments: quorum)
        defer { collector.stop() }
        let worker = try await FaultWorker.start(
            ["--queue-type", "quorum", "--concurrency", "4", "--prefetch", "20"], url: cluster.url, queues: [queue]
        ) { executable, arguments, environment in
            try ChildProcess(executable, arguments, environment: environment)
        }
        started(worker)

        // Half the tasks before the stop, half while and after it: the
        // publisher fails over too (to the next node of its own list).
        let total = 3000
        let uuids = (0..<total).map { _ in UUID().uuidString.lowercased() }
        let publisher = TaskPublisher(endpoints: endpoints)
        func publish(_ slice: ArraySlice<String>) async throws {
            for uuid in slice {
                try await publisher.publish(
                    #"{"uuid": "\#(uuid)", "task_name": "sleep", "args": [0.01]}"#, to: queue, uuid: uuid, replyTo: replies)
            }
        }
        try await publish(uuids[..<(total / 2)])
        let late = Task { try await publish(uuids[(total / 2)...]) }

        try await waitUntil("a quarter of the results", timeout: 120) {
            if let ended = worker.exitStatus { throw ChildProcessError("the worker exited (\(ended)):\n\(worker.stderrTail())") }
            return collector.total >= total / 4
        }
        // Stop the node the worker consumes from: the first one it
        // connected to, which is node 1, the head of its list.
        let before = collector.total
        try await cluster.run("stop-node", "1", timeout: 120)
        let stopped = ContinuousClock.now
        try await late.value
        await publisher.close()

        do {
            try await waitUntil("every task's result after the stop (have \(collector.counts.count) of \(total))", timeout: 180) {
                if let ended = worker.exitStatus { throw ChildProcessError("the worker exited (\(ended)):\n\(worker.stderrTail())") }
                return Set(collector.counts.keys).isSuperset(of: uuids)
            }
        } catch let error as TimeoutError {
            throw ChildProcessError("\(error)\nworker:\n\(worker.stderrTail(lines: 60))")
        }
        let resumed = ContinuousClock.now - stopped
        try await Task.sleep(for: .milliseconds(500))
        let survivors = [cluster.port(2), cluster.port(3)]
        let log = worker.standardErrorText
        let reconnectedTo = log.split(separator: "\n").last { $0.contains("connected to RabbitMQ") }.map(String.init) ?? ""
        let figures = RunFigures(
            scenario: "cluster failover (3 nodes, quorum queues, node 1 stopped)", sent: uuids, counts: collector.counts,
            extra: "results before the stop \(before), all in \(resumed) after it, last connection: \(reconnectedTo.split(separator: " ").filter { $0.hasPrefix("url=") }.first ?? "?")")
        figures.print()
        #expect(figures.lost == 0)
        #expect(before < total, "the node was stopped after the run, not in the middle of it")
        #expect(worker.isRunning, "the worker went on through another node")
        #expect(log.contains("reconnected: consuming again"), "\(worker.stderrTail())")
        #expect(survivors.contains { reconnectedTo.contains("127.0.0.1:\($0)/") }, "\(reconnectedTo)")
        #expect(Set(collector.statuses.values) == ["success"])
    }
}

extension ClusterFailoverTests {
    /// `qtasks send --count 3000` with the cluster's URL list, node 1 (where
    /// its connections are: the head of the list) stopped while it sends
    /// (3,000 rather than 1,500: sending 1,500 here took 1.4-1.9 s, too
    /// close to the time a node takes to stop for the stop to surely fall
    /// within it):
    /// the lost publish is retried through node 2, every task is sent and
    /// runs; results of tasks sent through the lost reply queue are counted
    /// apart, and the exit status follows the documented rules.
    @Test func theCLIFailsOverWhileSending() async throws {
        try await withOwnCluster { cluster, started in try await runSendScenario(cluster, started: started) }
    }

    private func runSendScenario(_ cluster: RabbitMQCluster, started: (ChildProcess) -> Void) async throws {
        let queue = IntegrationEnvironment.uniqueQueue("cluster-send")
        let total = 3000
        let worker = try await FaultWorker.start(
            ["--queue-type", "quorum", "--concurrency", "8", "--prefetch", "40"], url: cluster.url, queues: [queue]
        ) { executable, arguments, environment in
            try ChildProcess(executable, arguments, environment: environment)
        }
        started(worker)
        let send = try ChildProcess(
            IntegrationEnvironment.cliExecutable,
            // One at a time, each confirmed before the next: pipelined
            // batches send the 3,000 in a fifth of a second, before any
            // node could be stopped.
            ["send", "--url", cluster.url, "--queue", queue, "--queue-type", "quorum", "--count", String(total), "--wait", "120",
             "--batch-size", "1", "sleep", "0.01"])
        started(send)
        let spawned = ContinuousClock.now
        // As soon as its tasks run, the CLI is connected to node 1 (the head
        // of its list): stop that node.
        try await waitUntil("the first task to run", timeout: 60) {
            if let ended = send.exitStatus {
                throw ChildProcessError("qtasks send ended before the stop (\(ended)):\n\(send.standardOutputText)\n\(send.stderrTail())")
            }
            return worker.standardErrorText.contains("task succeeded")
        }
        try await cluster.run("stop-node", "1", timeout: 120)
        let stopped = ContinuousClock.now
        guard let ended = await send.waitForExit(timeout: 200) else {
            throw ChildProcessError("qtasks send did not end:\n\(send.standardOutputText)\n\(send.stderrTail())")
        }
        let output = send.standardOutputText
        let errors = send.standardErrorText
        func figure(_ pattern: String) -> Int? {
            guard let match = output.firstMatch(of: try! Regex(pattern)), let text = match.output[1].substring else { return nil }
            return Int(text)
        }
        let sent = figure(#"sent (\d+) tasks in"#)
        let sendSeconds = output.firstMatch(of: /sent \d+ tasks in ([0-9.]+) s/).flatMap { Double($0.output.1) } ?? 0
        // Sending ended no earlier than `spawned + sendSeconds` (those
        // seconds count from the first send): after the node was down, it
        // was still sending. A lost connection is not always a failed
        // publish (one lost between two publishes is reopened before the
        // next), so the retries are a figure, not the proof.
        let sendingOutlastedTheStop = spawned + .milliseconds(Int64(sendSeconds * 1000)) > stopped
        let received = figure(#"results: (\d+) received"#) ?? 0
        let failed = figure(#"(\d+) failed"#) ?? 0
        let timedOut = figure(#"(\d+) timed out"#) ?? 0
        let lost = figure(#"results lost with a reply queue: (\d+)"#) ?? 0
        let retries = errors.split(separator: "\n").count { $0.contains("the connection was lost; retrying") }

        // Every task ran: its uuid in a worker's "task succeeded" line.
        func runs() -> [Substring] {
            worker.standardErrorText.split(separator: "\n").filter { $0.contains("task succeeded") }
                .compactMap { $0.firstMatch(of: /uuid=([0-9a-f-]{36})/)?.output.1 }
        }
        do {
            try await waitUntil("every task to run (have \(Set(runs()).count) of \(total))", timeout: 120) {
                Set(runs()).count >= total
            }
        } catch let error as TimeoutError {
            throw ChildProcessError("\(error)\nworker:\n\(worker.stderrTail(lines: 40))")
        }
        let allRuns = runs()
        print(
            "[figures] producer failover (3 nodes, quorum queue, node 1 stopped while qtasks send --count \(total) ran): "
                + "sent \(sent.map(String.init) ?? "?") in \(sendSeconds) s (node 1 down at least \(spawned + .milliseconds(Int64(sendSeconds * 1000)) - stopped) before the last send), results received \(received), lost with a reply queue \(lost), "
                + "timed out \(timedOut), publish retries logged \(retries), tasks run \(Set(allRuns).count) "
                + "(runs \(allRuns.count), duplicates \(allRuns.count - Set(allRuns).count)), CLI ended \(ended) "
                + "\(ContinuousClock.now - stopped) after the stop")

        #expect(sent == total, "\(output)\n\(errors)")
        #expect(sendingOutlastedTheStop, "the node was down only after the last send, not while sending: \(output)")
        #expect(failed == 0 && timedOut == 0, "\(output)")
        #expect(received + lost == total, "\(output)")
        // Documented: 4 when results were lost with a reply queue, else 0.
        #expect(ended == .exited(lost > 0 ? 4 : 0), "\(output)\n\(errors)")
        #expect(Set(allRuns).count == total)
    }
}

/// `deploy/rabbitmq-cluster.sh` on the ports of this run:
/// `QTASKS_CLUSTER_RABBITMQ_PORT`, which deploy/test.sh sets to its broker
/// port + 41; else the test broker's port + 41 too (5713 by default, away
/// from the script's own default 5703, where a developer's cluster runs).
struct RabbitMQCluster {
    let base = ProcessInfo.processInfo.environment["QTASKS_CLUSTER_RABBITMQ_PORT"].flatMap(Int.init)
        ?? IntegrationEnvironment.configuration.port + 41

    /// Whether any of its nodes answers (`status` exits 0), started by
    /// anyone.
    func isRunning() async throws -> Bool {
        let script = IntegrationEnvironment.repositoryRoot.appendingPathComponent("deploy/rabbitmq-cluster.sh").path
        let result = try await ChildProcess.run(
            script, ["status"], environment: ["QTASKS_CLUSTER_RABBITMQ_PORT": String(base)], timeout: 60)
        return result.termination == .exited(0)
    }

    func port(_ node: Int) -> Int { base + node - 1 }

    var endpoints: [AMQPConfiguration] {
        (1...3).map { node in
            var configuration = AMQPConfiguration()
            configuration.port = port(node)
            configuration.connectTimeout = .seconds(5)
            configuration.heartbeat = .seconds(5)
            return configuration
        }
    }

    /// The failover list the worker gets: every node, short heartbeats.
    var url: String {
        (1...3).map { "amqp://guest:guest@127.0.0.1:\(port($0))/%2F?heartbeat=5" }.joined(separator: ";")
    }

    func run(_ arguments: String..., timeout: Double) async throws {
        let script = IntegrationEnvironment.repositoryRoot.appendingPathComponent("deploy/rabbitmq-cluster.sh").path
        let result = try await ChildProcess.run(
            script, arguments, environment: ["QTASKS_CLUSTER_RABBITMQ_PORT": String(base)], timeout: timeout)
        guard result.termination == .exited(0) else {
            throw ChildProcessError("deploy/rabbitmq-cluster.sh \(arguments.joined(separator: " ")): \(result.termination)\n\(result.stdout)\n\(result.stderr)")
        }
    }
}
