import AMQP
import ArgumentParser
import CommandSupport
import Foundation
import Logging
import QTasks
import QTasksRabbitMQ
import Synchronization

@main
struct Benchmark: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "qtasks-benchmark",
        abstract: "Measures the worker against a bare rabbitmq-c loop on the same broker.",
        subcommands: [RunBenchmark.self, BenchmarkWorker.self, Prefill.self],
        defaultSubcommand: RunBenchmark.self)
}

/// `qtasks-benchmark run`: every row, side by side with the baseline.
struct RunBenchmark: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run the benchmark (the default command).",
        discussion: """
            Needs a RabbitMQ (deploy/rabbitmq.sh start). Build in release mode: \
            swift run -c release qtasks-benchmark --count 100000. Queues are durable and messages \
            persistent throughout; each row is repeated --repetitions times and shown as min, median \
            and max, with the median's ratio to the baseline's median. See docs/performance.md.
            """)

    @Option(help: "Broker URL (default: $QTASKS_URL, else the local broker).")
    var url: String?

    @OptionGroup var urlFile: BrokerURLFileOption
    @OptionGroup(title: "TLS")
    var tls: TLSOptions
    @Option(help: "Tasks (messages) per drain row.")
    var count: Int = 100_000
    @Option(help: "Repetitions of every row (at least 3 for min/median/max).")
    var repetitions: Int = 3
    @Option(help: "Worker concurrency (handlers at once).")
    var concurrency: Int = 32
    @Option(help: "Prefetch of both the worker and the baseline.")
    var prefetch: Int = 256
    @Option(help: "Round trips for the RPC rows.")
    var rpcCount: Int = 2_000
    @Option(help: "Tasks in flight for the RPC throughput row.")
    var inFlight: Int = 64
    @Option(help: "Sends awaiting their confirm at once in the enqueue row.")
    var enqueueInFlight: Int = 2048
    @Option(help: "Prefix of the queues the benchmark declares and deletes.")
    var queuePrefix: String = "qtasks-benchmark"
    static let allRows = "baseline,drain,results,rpc,enqueue,publish-baseline,batch,depends,state,store-sqlite,dashboard-sqlite,store-redis"
    @Option(help: "Rows to run, comma-separated (default: every row): \(allRows).")
    var rows: String?
    @Option(help: "Redis for the store-redis row (keys under qtasks-benchmark-<pid>:, expiring after 10 minutes).")
    var redisURL: String = "redis://127.0.0.1:6379/0"
    @Option(help: ArgumentHelp(
        "dashboard-sqlite row: also open the Overview page in this headless Chromium during the drain (e.g. /usr/bin/chromium).",
        valueName: "path"))
    var dashboardBrowser: String?

    func validate() throws {
        guard count > 0, repetitions > 0, concurrency > 0, rpcCount > 0, inFlight > 0 else {
            throw ValidationError("counts must be positive")
        }
        guard (1...65535).contains(prefetch) else { throw ValidationError("--prefetch must be 1...65535") }
    }

    func run() async throws {
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = .warning
            return handler
        }
        // The TLS options become query parameters of the URL, which the
        // worker processes the benchmark starts then get as they are.
        let url = try tls.applied(
            to: try SecretURL.broker(flag: self.url, file: urlFile)
                ?? "amqp://guest:guest@127.0.0.1:5672/%2F")
        let amqp = try AMQPConfiguration(url: url)
        print("swift-qtasks benchmark: N=\(count), repetitions=\(repetitions), concurrency=\(concurrency), prefetch=\(prefetch), RPC round trips=\(rpcCount), broker \(amqp.redactedURL)")
        print("durable queues, persistent messages; rates from the first delivery to the last")
        fflush(nil)

        var selected = Set((self.rows ?? Self.allRows).split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) })
        // The dashboard row runs `qtasks dashboard`, a product of its own:
        // asked for, it must be built; by default, the row is left out.
        if selected.contains("dashboard-sqlite") && !FileManager.default.isExecutableFile(atPath: DashboardLoad.executable.path) {
            let message = "the dashboard-sqlite row needs \(DashboardLoad.executable.path): swift build -c <config> --product qtasks"
            guard self.rows == nil else { throw BenchmarkError(message) }
            log(message + "; leaving the row out")
            selected.remove("dashboard-sqlite")
        }
        if selected.contains("dashboard-sqlite") {
            print("dashboard-sqlite: qtasks dashboard on the row's SQLite store, with a client following /api/live and one fetching /api/overview and /api/tasks?limit=50 every 2 s"
                + (dashboardBrowser.map { ", and headless Chromium (\($0)) on the Overview page" } ?? " (no browser)"))
            fflush(nil)
        }
        let stateDirectory = FileManager.default.temporaryDirectory.appendingPathComponent("qtasks-benchmark-\(getpid())")
        try FileManager.default.createDirectory(at: stateDirectory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: stateDirectory) }
        var rows = Rows()
        for repetition in 1...repetitions {
            func step(_ name: String) { log("repetition \(repetition)/\(repetitions): \(name)") }
            if selected.contains("baseline") {
                step("baseline")
                rows.add("baseline", try await baseline(amqp))
            }
            if selected.contains("drain") {
                step("drain")
                let result = try await drain(url: url, amqp: amqp, task: "noop")
                rows.add("drain", result.rate)
                rows.add("peak", result.peakMiB)
            }
            if selected.contains("results") {
                step("drain with results")
                let (resultsRate, peakWithResults) = try await drainWithResults(url: url, amqp: amqp)
                rows.add("results", resultsRate)
                rows.add("peak", peakWithResults)
            }
            if selected.contains("enqueue") {
                step("enqueue")
                rows.add("enqueue", try await enqueue(url: url))
            }
            if selected.contains("publish-baseline") {
                step("publish baseline: rabbitmq-c publish loop with confirms")
                rows.add("publish-baseline", try await publishBaseline(amqp))
            }
            if selected.contains("batch") {
                step("batch send")
                rows.add("batch", try await batchSend(url: url))
            }
            if selected.contains("rpc") {
                step("RPC")
                let rpc = try await roundTrips(url: url)
                rows.add("p50", rpc.p50)
                rows.add("p90", rpc.p90)
                rows.add("p99", rpc.p99)
                rows.add("rpc-rate", rpc.rate)
                rows.add("idle", rpc.idleMemory)
            }
            if selected.contains("depends") {
                step("drain with dependencies")
                rows.add("depends", try await drain(url: url, amqp: amqp, task: "noop_depends").rate)
            }
            if selected.contains("state") {
                step("drain with a State update on SQLite")
                let database = stateDirectory.appendingPathComponent("state-\(repetition).db").path
                rows.add("state", try await drain(url: url, amqp: amqp, task: "noop_state", stateURL: "sqlite://\(database)").rate)
            }
            // Rows 10 (SQLite) and 11 in turn, their order swapped every
            // other repetition: neither always runs first.
            var storeRate: Double?
            var dashboardRate: Double?
            for row in repetition % 2 == 1 ? ["store-sqlite", "dashboard-sqlite"] : ["dashboard-sqlite", "store-sqlite"]
            where selected.contains(row) {
                if row == "store-sqlite" {
                    step("drain recorded in an SQLite result store")
                    let database = stateDirectory.appendingPathComponent("results-\(repetition).db").path
                    let result = try await drain(url: url, amqp: amqp, task: "noop", resultStoreURL: "sqlite://\(database)")
                    rows.add("store-sqlite", result.rate)
                    rows.add("store-sqlite-worker-cpu", result.workerCPUSeconds / Double(count) * 1e6)
                    storeRate = result.rate
                } else {
                    step("drain recorded in an SQLite result store, the dashboard open on it")
                    let database = stateDirectory.appendingPathComponent("dashboard-\(repetition).db").path
                    let result = try await drain(
                        url: url, amqp: amqp, task: "noop", resultStoreURL: "sqlite://\(database)", dashboard: true)
                    rows.add("dashboard-sqlite", result.rate)
                    rows.add("dashboard-worker-cpu", result.workerCPUSeconds / Double(count) * 1e6)
                    if let usage = result.dashboard {
                        rows.add("dashboard-cpu", usage.cpuSeconds)
                        rows.add("dashboard-cpu-percent", usage.cpuSeconds / usage.wallSeconds * 100)
                    }
                    dashboardRate = result.rate
                }
            }
            if let storeRate, let dashboardRate { rows.add("dashboard-paired", dashboardRate / storeRate) }
            if selected.contains("store-redis") {
                step("drain recorded in a Redis result store")
                rows.add("store-redis", try await drain(url: url, amqp: amqp, task: "noop", resultStoreURL: redisURL).rate)
            }
        }
        rows.print(count: count, inFlight: inFlight)
    }

    // MARK: Rows

    /// Publishes `count` persistent task messages to `queue` with confirms.
    /// A task body as a producer sends it, with a uuid of its own.
    static func taskBody(_ task: String) -> [UInt8] {
        Array(#"{"uuid": "\#(UUID().uuidString.lowercased())", "task_name": "\#(task)", "args": [], "kwargs": {}}"#.utf8)
    }

    private func prefill(_ queue: String, amqp: AMQPConfiguration, task: String, replyTo: String? = nil) async throws {
        let connection = try await AMQPConnection.connect(amqp)
        let channel = try await connection.openChannel()
        try await channel.enableConfirms(window: 1024)
        let properties = AMQPProperties(
            contentType: "application/json", deliveryMode: AMQPProperties.persistentDeliveryMode, replyTo: replyTo)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for index in 0..<count {
                if index >= 2048 { try await group.next() }
                group.addTask { try await channel.publish(Self.taskBody(task), routingKey: queue, properties: properties) }
            }
            try await group.waitForAll()
        }
        await connection.close()
    }

    private func baseline(_ amqp: AMQPConfiguration) async throws -> Double {
        let queue = "\(queuePrefix)-baseline"
        let admin = try await AMQPConnection.connect(amqp)
        let channel = try await admin.openChannel()
        try await channel.deleteQueue(queue)
        try await channel.declareQueue(queue, durable: true)
        try await prefill(queue, amqp: amqp, task: "noop")
        let seconds = try RawBaseline.consumeAndAck(amqp, queue: queue, count: count, prefetch: prefetch)
        try await channel.deleteQueue(queue)
        await admin.close()
        return Double(count) / seconds
    }

    /// Rows 2, 7 and 10: `count` pre-published tasks drained by a worker
    /// process. With a result store (row 10) the time runs until the last
    /// task's end is written to the store, not only until it ran.
    ///
    /// Row 11 (`dashboard`): row 10 with `qtasks dashboard` reading the
    /// same store and open in a client (``DashboardLoad``), started after
    /// the prefill and before the worker; its CPU is read when the worker
    /// is ready and when the last record is written.
    private func drain(
        url: String, amqp: AMQPConfiguration, task: String, stateURL: String? = nil, resultStoreURL: String? = nil,
        dashboard: Bool = false
    ) async throws
        -> (rate: Double, peakMiB: Double, workerCPUSeconds: Double, dashboard: (cpuSeconds: Double, wallSeconds: Double)?)
    {
        let queue = "\(queuePrefix)-drain"
        let broker = try RabbitMQBroker(url: url)
        try await deleteQueues(queue, amqp: amqp)
        try await broker.declareTaskQueue(queue)
        try await prefill(queue, amqp: amqp, task: task)
        var load: DashboardLoad?
        if dashboard, let resultStoreURL {
            load = try await DashboardLoad(brokerURL: url, resultStoreURL: resultStoreURL, queue: queue, browser: dashboardBrowser)
        }
        defer { load?.stop() }
        let worker = try WorkerProcess(
            url: url, queue: queue, concurrency: concurrency, prefetch: prefetch, count: count, stateURL: stateURL,
            resultStoreURL: resultStoreURL)
        defer { worker.stop() }
        _ = try await worker.waitFor("ready")
        let cpuBefore = load?.cpuSeconds() ?? 0
        let workerCPUBefore = processCPUSeconds(worker.pid)
        let wallBefore = ContinuousClock.now
        guard var seconds = Double(try await worker.waitFor("drained")) else { throw BenchmarkError("bad drain line") }
        if resultStoreURL != nil {
            guard let recorded = Double(try await worker.waitFor("recorded")) else { throw BenchmarkError("bad recorded line") }
            seconds = recorded
        }
        let workerCPU = processCPUSeconds(worker.pid) - workerCPUBefore
        let usage = load.map { load in (cpuSeconds: load.cpuSeconds() - cpuBefore, wallSeconds: (ContinuousClock.now - wallBefore).seconds) }
        let peak = worker.memory().peak
        worker.stop()
        if resultStoreURL != nil {
            log(String(format: "%.0f tasks/s, worker CPU %.1f us/task", Double(count) / seconds, workerCPU / Double(count) * 1e6))
        }
        if let load, let usage {
            log(String(format: "dashboard (pid %d): %.2f s CPU over %.2f s (%.1f %% of a core); ", load.dashboardPID, usage.cpuSeconds, usage.wallSeconds, usage.cpuSeconds / usage.wallSeconds * 100) + load.summary)
            load.stop()
        }
        await broker.close()
        try await deleteQueues(queue, amqp: amqp)
        return (Double(count) / seconds, peak, workerCPU, usage)
    }

    /// Row 5: N sends through the Swift client, each confirmed by the
    /// broker, `--enqueue-in-flight` at a time.
    private func enqueue(url: String) async throws -> Double {
        let queue = "\(queuePrefix)-enqueue"
        let amqp = try AMQPConfiguration(url: url)
        try await deleteQueues(queue, amqp: amqp)
        let seconds = try await RabbitMQBroker.withBroker(url: url) { broker in
            try await TaskClient.withClient(broker: broker) { client in
                _ = try await client.send(BenchmarkTasks.noop, queue: queue)  // declares the queue, creates the reply queue
                let start = ContinuousClock.now
                try await withThrowingTaskGroup(of: Void.self) { group in
                    for index in 0..<count {
                        if index >= enqueueInFlight { try await group.next() }
                        group.addTask { _ = try await client.send(BenchmarkTasks.noop, queue: queue) }
                    }
                    try await group.waitForAll()
                }
                return (ContinuousClock.now - start).seconds
            }
        }
        try await deleteQueues(queue, amqp: amqp)
        return Double(count) / seconds
    }

    /// Row 8: N persistent messages published by a bare rabbitmq-c loop
    /// with publisher confirms, 1024 unconfirmed at most: the ceiling of
    /// row 9.
    private func publishBaseline(_ amqp: AMQPConfiguration) async throws -> Double {
        let queue = "\(queuePrefix)-publish-baseline"
        try await deleteQueues(queue, amqp: amqp)
        let admin = try await AMQPConnection.connect(amqp)
        let channel = try await admin.openChannel()
        try await channel.declareQueue(queue, durable: true)
        let seconds = try RawBaseline.publishWithConfirms(amqp, queue: queue, body: Self.taskBody("noop"), count: count, window: 1024)
        try await channel.deleteQueue(queue)
        await admin.close()
        return Double(count) / seconds
    }

    /// Row 9: N tasks through the Swift client's batch send (no
    /// `reply_to`, as `qtasks send --count N --wait 0`): each its own uuid
    /// and body, pipelined within the confirm window, all confirmed.
    private func batchSend(url: String) async throws -> Double {
        let queue = "\(queuePrefix)-batch"
        let amqp = try AMQPConfiguration(url: url)
        try await deleteQueues(queue, amqp: amqp)
        return try await RabbitMQBroker.withBroker(url: url) { broker in
            try await TaskClient.withClient(broker: broker) { client in
                try await client.sendWithoutReply(BenchmarkTasks.noop, queue: queue)  // declares the queue
                let calls = Array(repeating: (), count: count)
                let start = ContinuousClock.now
                try await client.sendWithoutReply(BenchmarkTasks.noop, batch: calls, queue: queue)
                let seconds = (ContinuousClock.now - start).seconds
                try await deleteQueues(queue, amqp: amqp)
                return Double(count) / seconds
            }
        }
    }

    /// Row 3: N pre-published tasks with a `reply_to`; the worker publishes
    /// every result and waits for its confirm before the ack. Timed by the
    /// results' arrival at a bare counting consumer (no-ack, no decoding),
    /// so that the machine's CPU goes to the broker and the worker, not to
    /// a client's bookkeeping (which rows 4 and 5 measure).
    private func drainWithResults(url: String, amqp: AMQPConfiguration) async throws -> (rate: Double, peakMiB: Double) {
        let queue = "\(queuePrefix)-results"
        let replies = "\(queuePrefix)-replies"
        try await deleteQueues(queue, amqp: amqp)
        let broker = try RabbitMQBroker(url: url)
        try await broker.declareTaskQueue(queue)
        let connection = try await AMQPConnection.connect(amqp)
        let channel = try await connection.openChannel()
        try await channel.deleteQueue(replies)
        try await channel.declareQueue(replies, durable: false)
        try await prefill(queue, amqp: amqp, task: "noop", replyTo: replies)
        let counter = ArrivalCounter(target: count)
        _ = try await channel.consume(queue: replies, noAck: true) { event in
            if case .delivery = event { counter.arrived() }
        }
        let worker = try WorkerProcess(url: url, queue: queue, concurrency: concurrency, prefetch: prefetch, count: 0)
        defer { worker.stop() }
        let seconds = try await counter.seconds(timeout: .seconds(600))
        let peak = worker.memory().peak
        worker.stop()
        try await channel.deleteQueue(replies)
        await connection.close()
        await broker.close()
        try await deleteQueues(queue, amqp: amqp)
        return (Double(count) / seconds, peak)
    }

    private func roundTrips(url: String) async throws -> (p50: Double, p90: Double, p99: Double, rate: Double, idleMemory: Double) {
        let queue = "\(queuePrefix)-rpc"
        let amqp = try AMQPConfiguration(url: url)
        try await deleteQueues(queue, amqp: amqp)
        let broker = try RabbitMQBroker(url: url)
        try await broker.declareTaskQueue(queue)
        let worker = try WorkerProcess(url: url, queue: queue, concurrency: concurrency, prefetch: prefetch, count: 0)
        defer { worker.stop() }
        _ = try await worker.waitFor("ready")
        try await Task.sleep(for: .milliseconds(500))
        let idle = worker.memory().current
        let client = TaskClient(broker: broker)
        // Warm up the connections and the reply queue.
        for _ in 0..<50 { _ = try await client.send(BenchmarkTasks.noop, queue: queue).value(timeout: .seconds(10)) }
        var latencies: [Double] = []
        latencies.reserveCapacity(rpcCount)
        for _ in 0..<rpcCount {
            let start = ContinuousClock.now
            _ = try await client.send(BenchmarkTasks.noop, queue: queue).value(timeout: .seconds(10))
            latencies.append((ContinuousClock.now - start).seconds * 1000)
        }
        let start = ContinuousClock.now
        try await withThrowingTaskGroup(of: Void.self) { group in
            for index in 0..<rpcCount {
                if index >= inFlight { try await group.next() }
                group.addTask { _ = try await client.send(BenchmarkTasks.noop, queue: queue).value(timeout: .seconds(30)) }
            }
            try await group.waitForAll()
        }
        let rate = Double(rpcCount) / (ContinuousClock.now - start).seconds
        worker.stop()
        await client.close()
        await broker.close()
        try await deleteQueues(queue, amqp: amqp)
        return (percentile(latencies, 0.5), percentile(latencies, 0.9), percentile(latencies, 0.99), rate, idle)
    }

    private func deleteQueues(_ queue: String, amqp: AMQPConfiguration) async throws {
        let connection = try await AMQPConnection.connect(amqp)
        let channel = try await connection.openChannel()
        try await channel.deleteQueue(queue)
        try await channel.deleteQueue(QueueNaming.deadLetterQueue(for: queue))
        await connection.close()
    }

    private func log(_ text: String) {
        FileHandle.standardError.write(Data("[benchmark] \(text)\n".utf8))
    }
}

/// The measurements by row, and the table.
struct Rows {
    private var values: [String: [Double]] = [:]

    mutating func add(_ row: String, _ value: Double) { values[row, default: []].append(value) }

    func print(count: Int, inFlight: Int) {
        let baseline = Summary(values["baseline"] ?? []).median
        func line(_ name: String, _ unit: String, _ key: String, ratio: Bool = false, target: String = "", against: Double? = nil) {
            guard let measured = values[key], !measured.isEmpty else { return }
            let summary = Summary(measured)
            // Against the consume baseline (row 1), or the given one.
            let reference = against ?? (ratio ? baseline : 0)
            let ratioText = reference > 0 ? String(format: "%.2f", summary.median / reference) : ""
            Swift.print(
                name.padding(toLength: 38, withPad: " ", startingAt: 0)
                    + unit.padding(toLength: 9, withPad: " ", startingAt: 0)
                    + [summary.min, summary.median, summary.max].map { format($0).leftPadded(11) }.joined()
                    + ratioText.leftPadded(10) + "  " + target)
        }
        Swift.print("")
        Swift.print(
            "row".padding(toLength: 38, withPad: " ", startingAt: 0) + "unit".padding(toLength: 9, withPad: " ", startingAt: 0)
                + "min".leftPadded(11) + "median".leftPadded(11) + "max".leftPadded(11) + "x baseline".leftPadded(10)
                + "  target")
        line("1 baseline: rabbitmq-c consume+ack", "msg/s", "baseline", ratio: true)
        line("2 drain, no reply_to", "tasks/s", "drain", ratio: true, target: ">= 0.80 x baseline")
        line("3 drain, results confirmed before ack", "tasks/s", "results", ratio: true, target: ">= 0.50 x baseline")
        line("4 RPC round trip p50", "ms", "p50", target: "<= 1.0 ms")
        line("4 RPC round trip p90", "ms", "p90")
        line("4 RPC round trip p99", "ms", "p99", target: "<= 5 ms")
        line("4 RPC throughput, \(inFlight) in flight", "tasks/s", "rpc-rate")
        line("5 enqueue, Swift client + confirms", "tasks/s", "enqueue", target: ">= 30000")
        line("6 worker RSS idle", "MiB", "idle")
        line("6 worker RSS peak under load", "MiB", "peak", target: "<= 50 MiB")
        line("7 drain, task + worker dependency", "tasks/s", "depends", ratio: true)
        line("7 drain, one SQLite State update", "tasks/s", "state", ratio: true)
        let publishBaseline = Summary(values["publish-baseline"] ?? []).median
        line("8 baseline: C publish, confirms", "msg/s", "publish-baseline")
        line("9 enqueue, batch send (no reply_to)", "tasks/s", "batch", target: ">= 0.70 x row 8 (ratio vs row 8)", against: publishBaseline)
        let drain = Summary(values["drain"] ?? []).median
        line("10 drain + SQLite result store", "tasks/s", "store-sqlite", target: ">= 0.50 x row 2 (ratio vs row 2)", against: drain)
        line("10 drain + Redis result store", "tasks/s", "store-redis", target: ">= 0.50 x row 2 (ratio vs row 2)", against: drain)
        let store = Summary(values["store-sqlite"] ?? []).median
        line("11 drain + SQLite store + dashboard", "tasks/s", "dashboard-sqlite", target: ">= 0.90 x row 10 (ratio vs row 10)", against: store)
        line("11 same, / row 10 of its repetition", "ratio", "dashboard-paired", target: ">= 0.90")
        line("11 dashboard CPU over the drain", "s", "dashboard-cpu")
        line("11 dashboard CPU, % of one core", "%", "dashboard-cpu-percent")
        if values["dashboard-sqlite"] != nil {
            // The worker's own CPU per task, from its ready line to its
            // last record: less sensitive than the rates to what else runs.
            line("10 worker CPU per task, SQLite store", "us", "store-sqlite-worker-cpu")
            line("11 worker CPU per task, + dashboard", "us", "dashboard-worker-cpu", target: "(ratio vs row 10's)",
                against: Summary(values["store-sqlite-worker-cpu"] ?? []).median)
        }
        fflush(nil)
    }

    private func format(_ value: Double) -> String {
        value >= 100 ? String(Int(value.rounded())) : String(format: "%.2f", value)
    }
}

extension String {
    func leftPadded(_ width: Int) -> String {
        count >= width ? " " + self : String(repeating: " ", count: width - count) + self
    }
}

/// Counts result arrivals on the consumer's owner thread; the seconds from
/// the first to the `target`-th.
final class ArrivalCounter: Sendable {
    private struct State {
        var first: ContinuousClock.Instant?
        var count = 0
        var done: ContinuousClock.Instant?
    }
    private let state = Mutex(State())
    private let target: Int

    init(target: Int) { self.target = target }

    func arrived() {
        state.withLock { state in
            let now = ContinuousClock.now
            if state.first == nil { state.first = now }
            state.count += 1
            if state.count == target { state.done = now }
        }
    }

    func seconds(timeout: Duration) async throws -> Double {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if let span = state.withLock({ state in state.done.map { $0 - state.first! } }) { return span.seconds }
            try await Task.sleep(for: .milliseconds(5))
        }
        throw BenchmarkError("only \(state.withLock { $0.count }) of \(target) results arrived")
    }
}
