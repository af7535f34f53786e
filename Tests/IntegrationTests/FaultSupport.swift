import AMQP
import Foundation
import Synchronization
import Testing

/// Helpers of the fault-injection suite: workers with extra options,
/// task publishing and result collection that survive a broker restart,
/// and the figures each scenario prints.

extension TestScope {
    /// Starts a `qtasks-example` worker with `extra` options (and the test
    /// task `crash` registered) and waits until it consumes.
    func startFaultWorker(
        _ extra: [String], url: String = IntegrationEnvironment.url, queues: [String]? = nil
    ) async throws -> ChildProcess {
        try await FaultWorker.start(extra, url: url, queues: queues ?? [queue]) { executable, arguments, environment in
            try spawn(executable, arguments, environment: environment)
        }
    }
}

enum FaultWorker {
    /// Starts a worker through `spawn` and waits for its "worker started".
    static func start(
        _ extra: [String], url: String, queues: [String],
        spawn: (String, [String], [String: String]) throws -> ChildProcess
    ) async throws -> ChildProcess {
        var arguments = ["--url", url, "--log-level", "info"]
        for queue in queues { arguments += ["--queue", queue] }
        arguments += extra
        let worker = try spawn(IntegrationEnvironment.workerExecutable, arguments, ["QTASKS_EXAMPLE_CRASH_TASK": "1"])
        try await worker.waitUntilConsuming()
        return worker
    }
}

/// Publishes tasks (persistent, confirmed, `reply_to` a given queue) over a
/// connection that it opens again when it was lost, to the next of its
/// endpoints (the nodes of a cluster) when it has several.
final class TaskPublisher: Sendable {
    private let endpoints: EndpointRotation
    private let channel = Mutex<AMQPChannel?>(nil)

    init(configuration: AMQPConfiguration) {
        self.endpoints = EndpointRotation([configuration])
    }

    init(endpoints: [AMQPConfiguration]) {
        self.endpoints = EndpointRotation(endpoints)
    }

    private func openChannel() async throws -> AMQPChannel {
        if let channel = channel.withLock({ $0 }), channel.connection.isOpen { return channel }
        let connection = try await endpoints.connect()
        let opened = try await connection.openChannel()
        try await opened.enableConfirms()
        channel.withLock { $0 = opened }
        return opened
    }

    /// Publishes `body` to `queue`, trying again (up to 60 s) while the
    /// broker is unreachable.
    func publish(_ body: String, to queue: String, uuid: String, replyTo: String) async throws {
        let deadline = ContinuousClock.now + .seconds(60)
        while true {
            do {
                let channel = try await openChannel()
                try await channel.publish(
                    Array(body.utf8), routingKey: queue, mandatory: true,
                    properties: AMQPProperties(
                        contentType: "application/json", deliveryMode: AMQPProperties.persistentDeliveryMode,
                        correlationID: uuid, replyTo: replyTo, messageID: uuid))
                return
            } catch {
                guard ContinuousClock.now < deadline else { throw error }
                channel.withLock { $0 = nil }
                try await Task.sleep(for: .milliseconds(200))
            }
        }
    }

    func close() async {
        await channel.withLock({ $0 })?.connection.close()
    }
}

/// Consumes a durable result queue, acknowledging each result after
/// counting it, and consumes again after a lost connection: counts results
/// per correlation id.
final class ResultCollector: Sendable {
    private struct State {
        var counts: [String: Int] = [:]
        var statuses: [String: String] = [:]
        var total = 0
        var reconnects = 0
    }
    private let state = Mutex(State())
    private let loop = Mutex<Task<Void, Never>?>(nil)

    /// Starts consuming `queue` (declared durable) at `configuration`.
    init(configuration: AMQPConfiguration, queue: String) {
        start(EndpointRotation([configuration]), queue: queue, arguments: [:])
    }

    /// Starts consuming `queue` (declared durable, with `arguments`) at the
    /// first of `endpoints` that answers, the next one after a loss.
    init(endpoints: [AMQPConfiguration], queue: String, arguments: AMQPTable) {
        start(EndpointRotation(endpoints), queue: queue, arguments: arguments)
    }

    private func start(_ endpoints: EndpointRotation, queue: String, arguments: AMQPTable) {
        let task = Task { [self] in
            var first = true
            while !Task.isCancelled {
                do {
                    let connection = try await endpoints.connect()
                    defer { Task { await connection.close() } }
                    if !first { state.withLock { $0.reconnects += 1 } }
                    first = false
                    let channel = try await connection.openChannel()
                    try await channel.declareQueue(queue, durable: true, arguments: arguments)
                    try await channel.setPrefetch(count: 500)
                    for try await delivery in try await channel.consume(queue: queue) {
                        let status = (try? ResultMessage(delivery))?.status ?? "unreadable"
                        let id = delivery.properties.correlationID ?? "?"
                        state.withLock { state in
                            state.counts[id, default: 0] += 1
                            state.statuses[id] = status
                            state.total += 1
                        }
                        try delivery.channel.enqueueAck(deliveryTag: delivery.deliveryTag)
                    }
                } catch {
                    try? await Task.sleep(for: .milliseconds(200))
                }
            }
        }
        loop.withLock { $0 = task }
    }

    var total: Int { state.withLock { $0.total } }
    var counts: [String: Int] { state.withLock { $0.counts } }
    var statuses: [String: String] { state.withLock { $0.statuses } }
    var reconnects: Int { state.withLock { $0.reconnects } }

    func stop() {
        loop.withLock { $0 }?.cancel()
    }
}

/// Connects to one of several endpoints, starting after the one that last
/// failed: a test client's failover (the worker's is the code under test).
final class EndpointRotation: Sendable {
    private let endpoints: [AMQPConfiguration]
    private let next = Mutex(0)

    init(_ endpoints: [AMQPConfiguration]) {
        self.endpoints = endpoints
    }

    func connect() async throws -> AMQPConnection {
        let start = next.withLock { $0 }
        var lastError: (any Error)?
        for offset in endpoints.indices {
            let index = (start + offset) % endpoints.count
            do {
                let connection = try await AMQPConnection.connect(endpoints[index])
                // The next connect (after this one is lost) tries another node first.
                next.withLock { $0 = (index + 1) % endpoints.count }
                return connection
            } catch {
                lastError = error
            }
        }
        throw lastError ?? ChildProcessError("no endpoint")
    }
}

/// What a run sent and got back; printed as one line per scenario.
struct RunFigures: CustomStringConvertible {
    let scenario: String
    let sent: Int
    let received: Int
    let unique: Int
    let duplicates: Int
    let lost: Int
    var extra: String = ""

    init(scenario: String, sent: [String], counts: [String: Int], extra: String = "") {
        self.scenario = scenario
        self.sent = sent.count
        self.received = counts.values.reduce(0, +)
        self.unique = sent.filter { counts[$0] != nil }.count
        self.duplicates = sent.reduce(0) { $0 + max(0, (counts[$1] ?? 0) - 1) }
        self.lost = sent.filter { counts[$0] == nil }.count
        self.extra = extra
    }

    var description: String {
        "fault-suite \(scenario): tasks sent \(sent), results received \(received), unique \(unique), duplicates \(duplicates), lost \(lost)"
            + (extra.isEmpty ? "" : "; \(extra)")
    }

    func print() {
        Swift.print(description)
        fflush(nil)
    }
}

/// `deploy/rabbitmq.sh ctl list_queues` for one queue on the shared broker:
/// (ready, unacknowledged), or nil when the script did not start that
/// broker (then the caller skips the check).
func sharedBrokerQueueCounts(_ queue: String) async -> (ready: Int, unacked: Int)? {
    let script = IntegrationEnvironment.repositoryRoot.appendingPathComponent("deploy/rabbitmq.sh").path
    let configuration = IntegrationEnvironment.configuration
    guard let result = try? await ChildProcess.run(
        script, ["ctl", "list_queues", "-q", "name", "messages_ready", "messages_unacknowledged"],
        environment: ["QTASKS_RABBITMQ_PORT": String(configuration.port)], timeout: 30),
        result.termination == .exited(0)
    else { return nil }
    for line in result.stdout.split(separator: "\n") {
        let fields = line.split(separator: "\t")
        if fields.count == 3, fields[0] == queue, let ready = Int(fields[1]), let unacked = Int(fields[2]) {
            return (ready, unacked)
        }
    }
    return nil
}

/// `deploy/rabbitmq.sh ctl list_queues name type` for one queue on the
/// shared broker: `classic` or `quorum`, or nil when the script did not
/// start that broker (then the caller skips the check).
func sharedBrokerQueueType(_ queue: String) async -> String? {
    let script = IntegrationEnvironment.repositoryRoot.appendingPathComponent("deploy/rabbitmq.sh").path
    let configuration = IntegrationEnvironment.configuration
    guard let result = try? await ChildProcess.run(
        script, ["ctl", "list_queues", "-q", "name", "type"],
        environment: ["QTASKS_RABBITMQ_PORT": String(configuration.port)], timeout: 30),
        result.termination == .exited(0)
    else { return nil }
    for line in result.stdout.split(separator: "\n") {
        let fields = line.split(separator: "\t")
        if fields.count == 2, fields[0] == queue { return String(fields[1]) }
    }
    return nil
}
