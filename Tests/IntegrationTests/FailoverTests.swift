import AMQP
import Foundation
import QTasks
import QTasksRabbitMQ
import Testing
import TestSupport

/// A broker URL that is a list of nodes (`url1;url2`): parsing, and the
/// worker passing over nodes that do not answer.
@Suite(.enabled(if: IntegrationEnvironment.enabled, "no RabbitMQ reachable at QTASKS_URL; deploy/test.sh starts one"),
       .timeLimit(.minutes(2)))
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
        #expect(configuration.endpoints.map(\.heartbeat) == [7, 60, 60])
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
        let cluster = RabbitMQCluster()
        // The test stops a node and then the whole cluster, deleting its
        // data: never do that to a cluster someone else started.
        if try await cluster.isRunning() {
            throw ChildProcessError(
                "a RabbitMQ cluster already runs on 127.0.0.1:\(cluster.port(1))-\(cluster.port(3)); this test starts, "
                    + "breaks and deletes its own: stop that one (deploy/rabbitmq-cluster.sh stop with "
                    + "QTASKS_CLUSTER_RABBITMQ_PORT=\(cluster.base)) or test with another QTASKS_RABBITMQ_PORT")
        }
        try await cluster.run("start", timeout: 240)
        var worker: ChildProcess?
        do {
            try await runScenario(cluster) { worker = $0 }
        } catch {
            if let worker { await worker.stop(grace: 5) }
            _ = try? await cluster.run("stop", timeout: 120)
            throw error
        }
        if let worker { await worker.stop(grace: 5) }
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
            configuration.connectTimeout = 5
            configuration.heartbeat = 5
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
