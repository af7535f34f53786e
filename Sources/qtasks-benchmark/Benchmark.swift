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
        subcommands: [RunBenchmark.self, BenchmarkWorker.self, BareConsumer.self, LayerConsumer.self, Prefill.self],
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
    @Option(help: "Worker concurrency, handlers at once (default: the library's WorkerConfiguration() default).")
    var concurrency: Int?
    @Option(help: "Worker prefetch (default: the library's default, 4 x concurrency).")
    var prefetch: Int?
    @Option(help: "Prefetch of the baseline's bare loop (its best here: see docs/performance.md).")
    var baselinePrefetch: Int = 256
    @Flag(help: ArgumentHelp(
        "Run the baseline's loop inside the benchmark process, at once after the prefill, as before 6 December 2026 (to compare; see docs/performance.md).",
        visibility: .hidden))
    var baselineInProcess = false
    @Option(name: .customLong("broker-pid"), help: "The broker's process id (the pid deploy/rabbitmq.sh status prints, or its beam.smp): adds the broker's CPU per message or task beside the baseline and drain rows, from /proc.")
    var brokerProcess: Int32?

    /// The Erlang VM of `--broker-pid`: the pid itself, or its beam.smp
    /// child when it is the rabbitmq-server wrapper script.
    private var brokerPID: Int32? {
        guard let pid = brokerProcess else { return nil }
        func command(_ pid: String) -> String {
            ((try? String(contentsOfFile: "/proc/\(pid)/comm", encoding: .utf8)) ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
        }
        if command("\(pid)") == "beam.smp" { return pid }
        let children = (try? String(contentsOfFile: "/proc/\(pid)/task/\(pid)/children", encoding: .utf8)) ?? ""
        return children.split(separator: " ").first { command(String($0)) == "beam.smp" }.flatMap { Int32($0) } ?? pid
    }
    @Option(help: "Worker processes of the scale row, comma-separated.")
    var scaleWorkers: String = "2,4"
    @Option(help: ArgumentHelp("Also draw the table as an SVG plot (bars: median, whiskers: min-max) into this file.", valueName: "file.svg"))
    var plot: String?
    @Option(help: "Round trips for the RPC rows.")
    var rpcCount: Int = 2_000
    @Option(help: "Tasks in flight for the RPC throughput row.")
    var inFlight: Int = 64
    @Option(help: "Sends awaiting their confirm at once in the enqueue row.")
    var enqueueInFlight: Int = 2048
    @Option(help: "Prefix of the queues the benchmark declares and deletes.")
    var queuePrefix: String = "qtasks-benchmark"
    static let allRows = "baseline,amqp-layer,drain,results,rpc,enqueue,publish-baseline,batch,depends,state,state-redis,store-sqlite,dashboard-sqlite,store-redis"
    /// Rows that run only when asked for by name.
    static let optionalRows = "scale"
    @Option(help: "Rows to run, comma-separated (default: every row but \(optionalRows)): \(allRows),\(optionalRows).")
    var rows: String?
    @Option(help: "Redis for the store-redis row (keys under qtasks-benchmark-<pid>:, expiring after 10 minutes).")
    var redisURL: String = "redis://127.0.0.1:6379/0"
    @Option(help: ArgumentHelp(
        "dashboard-sqlite row: also open the Overview page in this headless Chromium during the drain (e.g. /usr/bin/chromium).",
        valueName: "path"))
    var dashboardBrowser: String?

    func validate() throws {
        guard count > 0, repetitions > 0, (concurrency ?? 1) > 0, rpcCount > 0, inFlight > 0 else {
            throw ValidationError("counts must be positive")
        }
        guard (1...65535).contains(prefetch ?? 1) else { throw ValidationError("--prefetch must be 1...65535") }
        guard (1...65535).contains(baselinePrefetch) else { throw ValidationError("--baseline-prefetch must be 1...65535") }
        guard !scaleWorkerCounts.isEmpty, scaleWorkerCounts.allSatisfy({ (1...64).contains($0) }) else {
            throw ValidationError("--scale-workers: worker counts from 1 to 64, comma-separated")
        }
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
        let defaults = WorkerConfiguration()
        let workerConcurrency = concurrency.map { "\($0)" } ?? "\(defaults.effectiveConcurrency) (library default)"
        let workerPrefetch = prefetch.map { "\($0)" } ?? "\(WorkerConfiguration(concurrency: concurrency ?? defaults.concurrency).effectivePrefetch) (library default)"
        print("swift-qtasks benchmark: N=\(count), repetitions=\(repetitions), worker concurrency=\(workerConcurrency), worker prefetch=\(workerPrefetch), baseline prefetch=\(baselinePrefetch), RPC round trips=\(rpcCount), broker \(amqp.redactedURL)")
        print("durable queues, persistent messages; rates from the first delivery to the last")
        fflush(nil)

        var selected = Set((self.rows ?? Self.allRows).split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) })
        let known = Set((Self.allRows + "," + Self.optionalRows).split(separator: ",").map(String.init))
        if let unknown = selected.subtracting(known).sorted().first {
            throw ValidationError("unknown row '\(unknown)' in --rows (rows: \(Self.allRows),\(Self.optionalRows))")
        }
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
                step("baseline: bare rabbitmq-c loop in its own process")
                let result = try await baseline(url: url, amqp: amqp, count: count)
                rows.add("baseline", result.rate)
                rows.add("baseline-cpu", result.cpuPerTask)
                if let broker = result.brokerCPUPerTask { rows.add("baseline-broker-cpu", broker) }
            }
            if selected.contains("amqp-layer") {
                step("the AMQP layer alone in its own process")
                let result = try await layerDrain(url: url, amqp: amqp, count: count)
                rows.add("amqp-layer", result.rate)
                rows.add("amqp-layer-cpu", result.cpuPerTask)
                if let broker = result.brokerCPUPerTask { rows.add("amqp-layer-broker-cpu", broker) }
            }
            if selected.contains("drain") {
                step("drain")
                let result = try await drain(url: url, amqp: amqp, task: "noop")
                rows.add("drain", result.rate)
                rows.add("drain-cpu", result.cpuPerTask)
                if let broker = result.brokerCPUPerTask { rows.add("drain-broker-cpu", broker) }
                rows.add("peak", result.peakMiB)
            }
            if selected.contains("results") {
                step("drain with results")
                let result = try await drainWithResults(url: url, amqp: amqp)
                rows.add("results", result.rate)
                rows.add("results-cpu", result.cpuPerTask)
                if let broker = result.brokerCPUPerTask { rows.add("results-broker-cpu", broker) }
                rows.add("peak", result.peakMiB)
            }
            if selected.contains("scale") {
                for workers in scaleWorkerCounts {
                    step("drain by \(workers) worker processes")
                    let result = try await scaleOut(url: url, amqp: amqp, workers: workers)
                    rows.add("scale-\(workers)", result.rate)
                    rows.add("scale-\(workers)-cpu", result.cpuPerTask)
                }
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
                let result = try await drain(url: url, amqp: amqp, task: "noop_depends")
                rows.add("depends", result.rate)
                rows.add("depends-cpu", result.cpuPerTask)
            }
            if selected.contains("state") {
                step("drain with a State update on SQLite")
                let database = stateDirectory.appendingPathComponent("state-\(repetition).db").path
                let result = try await drain(url: url, amqp: amqp, task: "noop_state", stateURL: "sqlite://\(database)")
                rows.add("state", result.rate)
                rows.add("state-cpu", result.cpuPerTask)
                if let broker = result.brokerCPUPerTask { rows.add("state-broker-cpu", broker) }
            }
            if selected.contains("state-redis") {
                step("drain with a State update on Redis")
                // Under the benchmark's namespace, expiring after 10 minutes.
                let result = try await drain(url: url, amqp: amqp, task: "noop_state", stateURL: redisURL, stateTTL: 600)
                rows.add("state-redis", result.rate)
                rows.add("state-redis-cpu", result.cpuPerTask)
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
                    rows.add("store-sqlite-worker-cpu", result.cpuPerTask)
                    storeRate = result.rate
                } else {
                    step("drain recorded in an SQLite result store, the dashboard open on it")
                    let database = stateDirectory.appendingPathComponent("dashboard-\(repetition).db").path
                    let result = try await drain(
                        url: url, amqp: amqp, task: "noop", resultStoreURL: "sqlite://\(database)", dashboard: true)
                    rows.add("dashboard-sqlite", result.rate)
                    rows.add("dashboard-worker-cpu", result.cpuPerTask)
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
                let result = try await drain(url: url, amqp: amqp, task: "noop", resultStoreURL: redisURL)
                rows.add("store-redis", result.rate)
                rows.add("store-redis-cpu", result.cpuPerTask)
            }
        }
        let scale = selected.contains("scale") ? scaleWorkerCounts : []
        rows.print(count: count, inFlight: inFlight, scaleWorkers: scale)
        if let plot {
            try Plot.svg(
                rows.lines(inFlight: inFlight, scaleWorkers: scale),
                title: "swift-qtasks benchmark: N=\(count), \(repetitions) repetitions, worker concurrency \(workerConcurrency), prefetch \(workerPrefetch)"
            ).write(
                toFile: plot, atomically: true, encoding: .utf8)
            log("plot written to \(plot)")
        }
    }

    private var scaleWorkerCounts: [Int] {
        scaleWorkers.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
    }

    // MARK: Rows

    /// Publishes `count` persistent task messages to `queue` with confirms.
    /// A task body as a producer sends it, with a uuid of its own.
    static func taskBody(_ task: String) -> [UInt8] {
        Array(#"{"uuid": "\#(UUID().uuidString.lowercased())", "task_name": "\#(task)", "args": [], "kwargs": {}}"#.utf8)
    }

    private func prefill(_ queue: String, amqp: AMQPConfiguration, task: String, count: Int, replyTo: String? = nil) async throws {
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

    /// The queue that the baseline and every drain row drain: declared as
    /// the worker declares its queues, emptied, and filled with `count`
    /// persistent tasks, all confirmed, so that the bare loop and the
    /// worker start from the same queue.
    private func fillDrainQueue(task: String, url: String, amqp: AMQPConfiguration, count: Int, replyTo: String? = nil)
        async throws -> String
    {
        let queue = "\(queuePrefix)-drain"
        try await deleteQueues(queue, amqp: amqp)
        let broker = try RabbitMQBroker(url: url)
        try await broker.declareTaskQueue(queue)
        await broker.close()
        try await prefill(queue, amqp: amqp, task: task, count: count, replyTo: replyTo)
        return queue
    }

    /// Row 1: the bare rabbitmq-c loop (``RawBaseline/consumeAndAck``) in
    /// a child process (`qtasks-benchmark bare-consume`), on the queue the
    /// drain rows use, filled the same way, started and timed the way the
    /// worker is (``measure(_:count:recorded:atReady:)``).
    private func baseline(url: String, amqp: AMQPConfiguration, count: Int) async throws -> DrainResult {
        let queue = try await fillDrainQueue(task: "noop", url: url, amqp: amqp, count: count)
        if baselineInProcess {
            let cpuBefore = ownCPUSeconds()
            let seconds = try RawBaseline.consumeAndAck(amqp, queue: queue, count: count, prefetch: baselinePrefetch)
            let cpu = ownCPUSeconds() - cpuBefore
            try await deleteQueues(queue, amqp: amqp)
            return DrainResult(rate: Double(count) / seconds, cpuPerTask: cpu / Double(count) * 1e6)
        }
        let child = try WorkerProcess(
            benchmarkArguments: [
                "bare-consume", "--url", url, "--queue", queue, "--prefetch", "\(baselinePrefetch)", "--count", "\(count)",
            ])
        defer { child.stop() }
        var result = try await measure(child, count: count)
        result.peakMiB = child.memory().peak
        child.stop()
        try await deleteQueues(queue, amqp: amqp)
        return result
    }

    /// Row 1b (`amqp-layer`): the AMQP layer alone (``LayerConsumer``), at
    /// the worker's prefetch, on a queue filled as the worker's is.
    private func layerDrain(url: String, amqp: AMQPConfiguration, count: Int) async throws -> DrainResult {
        let queue = try await fillDrainQueue(task: "noop", url: url, amqp: amqp, count: count)
        let layerPrefetch = prefetch ?? WorkerConfiguration(concurrency: concurrency ?? WorkerConfiguration().concurrency).effectivePrefetch
        let child = try WorkerProcess(
            benchmarkArguments: [
                "layer-consume", "--url", url, "--queue", queue, "--prefetch", "\(layerPrefetch)", "--count", "\(count)",
            ])
        defer { child.stop() }
        let result = try await measure(child, count: count)
        child.stop()
        try await deleteQueues(queue, amqp: amqp)
        return result
    }

    /// What one drain gave: its rate, and the draining process's CPU time
    /// (user + system, `/proc/PID/stat`) per task over the same span,
    /// from its `ready` line to its last task, in microseconds.
    struct DrainResult {
        var rate: Double
        var cpuPerTask: Double
        var peakMiB: Double = 0
        /// The broker's CPU per task over the same span (with --broker-pid).
        var brokerCPUPerTask: Double?
        var dashboard: (cpuSeconds: Double, wallSeconds: Double)?
    }

    /// Times a child that prints `ready` and then `drained <seconds> cpu
    /// <seconds>` (and with a result store `recorded <seconds>`): its CPU
    /// time over that span.
    private func measure(
        _ child: WorkerProcess, count: Int, recorded: Bool = false, atReady: () async throws -> Void = {}
    ) async throws -> DrainResult {
        _ = try await child.waitFor("ready")
        try await atReady()
        let cpuBefore = threadsCPUSeconds(child.pid)
        let brokerBefore = brokerPID.map(processCPUSeconds)
        // "drained <seconds> cpu <seconds>": the child's own CPU time from
        // its ready line (getrusage, microseconds) where /proc counts in
        // clock ticks.
        let drained = try await child.waitFor("drained").split(separator: " ")
        guard var seconds = drained.first.flatMap({ Double($0) }) else { throw BenchmarkError("bad drained line") }
        var cpu = drained.count == 3 && drained[1] == "cpu" ? Double(drained[2]) : nil
        if recorded {
            guard let value = Double(try await child.waitFor("recorded")) else { throw BenchmarkError("bad recorded line") }
            seconds = value
            cpu = nil  // the store's writes go on after the last task ran
        }
        let cpuSeconds = cpu ?? (threadsCPUSeconds(child.pid) - cpuBefore)
        var result = DrainResult(rate: Double(count) / seconds, cpuPerTask: cpuSeconds / Double(count) * 1e6)
        if let brokerPID, let brokerBefore {
            result.brokerCPUPerTask = (processCPUSeconds(brokerPID) - brokerBefore) / Double(count) * 1e6
        }
        return result
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
        url: String, amqp: AMQPConfiguration, task: String, stateURL: String? = nil, stateTTL: Int? = nil,
        resultStoreURL: String? = nil, dashboard: Bool = false
    ) async throws -> DrainResult {
        let queue = try await fillDrainQueue(task: task, url: url, amqp: amqp, count: count)
        var load: DashboardLoad?
        if dashboard, let resultStoreURL {
            load = try await DashboardLoad(brokerURL: url, resultStoreURL: resultStoreURL, queue: queue, browser: dashboardBrowser)
        }
        defer { load?.stop() }
        let worker = try WorkerProcess(
            url: url, queue: queue, concurrency: concurrency, prefetch: prefetch, count: count, stateURL: stateURL,
            stateTTL: stateTTL, resultStoreURL: resultStoreURL)
        defer { worker.stop(grace: 60) }
        var dashboardCPUBefore = 0.0
        let wallBefore = ContinuousClock.now
        var result = try await measure(worker, count: count, recorded: resultStoreURL != nil) {
            dashboardCPUBefore = load?.cpuSeconds() ?? 0
        }
        result.dashboard = load.map { load in
            (cpuSeconds: load.cpuSeconds() - dashboardCPUBefore, wallSeconds: (ContinuousClock.now - wallBefore).seconds)
        }
        result.peakMiB = worker.memory().peak
        worker.stop(grace: 60)
        log(String(format: "%.0f tasks/s, worker CPU %.1f us/task", result.rate, result.cpuPerTask))
        if let load, let usage = result.dashboard {
            log(String(format: "dashboard (pid %d): %.2f s CPU over %.2f s (%.1f %% of a core); ", load.dashboardPID, usage.cpuSeconds, usage.wallSeconds, usage.cpuSeconds / usage.wallSeconds * 100) + load.summary)
            load.stop()
        }
        try await deleteQueues(queue, amqp: amqp)
        return result
    }

    /// The scale row: the drain of row 2 by `workers` worker processes on
    /// one queue at once. Each prints `first`/`progress` lines with the
    /// system's monotonic clock (``BenchmarkWorker``'s `--progress`); the
    /// rate runs from the earliest first task to the moment the tasks
    /// finished add up to N, and the CPU is the sum of every worker's.
    private func scaleOut(url: String, amqp: AMQPConfiguration, workers: Int) async throws -> DrainResult {
        let queue = try await fillDrainQueue(task: "noop", url: url, amqp: amqp, count: count)
        var children: [WorkerProcess] = []
        defer { for child in children { child.stop(grace: 60) } }
        for _ in 0..<workers {
            children.append(
                try WorkerProcess(
                    benchmarkArguments: ["worker", "--url", url, "--queue", queue, "--progress"]
                        + (concurrency.map { ["--concurrency", "\($0)"] } ?? []) + (prefetch.map { ["--prefetch", "\($0)"] } ?? [])))
        }
        for child in children { _ = try await child.waitFor("ready") }
        let cpuBefore = children.map { threadsCPUSeconds($0.pid) }
        let progress = ScaleProgress(workers: workers)
        let target = count
        let started = children
        let seconds = try await withThrowingTaskGroup(of: Void.self) { group in
            for (index, child) in started.enumerated() {
                group.addTask {
                    while let line = await child.nextLine() {
                        let fields = line.split(separator: " ")
                        guard fields.count == 3, fields[0] == "progress", let finished = Int(fields[1]),
                            let first = UInt64(fields[2].split(separator: "/")[0]), let last = UInt64(fields[2].split(separator: "/").last!)
                        else { continue }
                        if progress.update(worker: index, finished: finished, first: first, last: last, target: target) { return }
                    }
                }
            }
            defer { group.cancelAll() }
            let deadline = ContinuousClock.now + .seconds(600)
            while ContinuousClock.now < deadline {
                if let seconds = progress.seconds(target: target) { return seconds }
                try await Task.sleep(for: .milliseconds(20))
            }
            throw BenchmarkError("the \(workers) workers did not drain \(count) tasks within 600 s")
        }
        let cpu = zip(children, cpuBefore).map { threadsCPUSeconds($0.pid) - $1 }.reduce(0, +)
        log(String(format: "%d workers: %.0f tasks/s, worker CPU %.1f us/task (all processes)", workers, Double(count) / seconds, cpu / Double(count) * 1e6))
        for child in children { child.stop(grace: 60) }
        try await deleteQueues(queue, amqp: amqp)
        return DrainResult(rate: Double(count) / seconds, cpuPerTask: cpu / Double(count) * 1e6)
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
    /// a client's bookkeeping (which rows 4 and 5 measure). The worker's
    /// CPU runs from its `ready` line to the N-th result's arrival.
    private func drainWithResults(url: String, amqp: AMQPConfiguration) async throws -> DrainResult {
        let replies = "\(queuePrefix)-replies"
        let connection = try await AMQPConnection.connect(amqp)
        let channel = try await connection.openChannel()
        try await channel.deleteQueue(replies)
        try await channel.declareQueue(replies, durable: false)
        let queue = try await fillDrainQueue(task: "noop", url: url, amqp: amqp, count: count, replyTo: replies)
        let counter = ArrivalCounter(target: count)
        _ = try await channel.consume(queue: replies, noAck: true) { event in
            if case .delivery = event { counter.arrived() }
        }
        let worker = try WorkerProcess(
            url: url, queue: queue, concurrency: concurrency, prefetch: prefetch, count: 0)
        defer { worker.stop(grace: 60) }
        _ = try await worker.waitFor("ready")
        let cpuBefore = threadsCPUSeconds(worker.pid)
        let brokerBefore = brokerPID.map(processCPUSeconds)
        let seconds = try await counter.seconds(timeout: .seconds(600))
        let cpu = threadsCPUSeconds(worker.pid) - cpuBefore
        // Over the same span: the task's delivery and ack, the result's
        // publish, confirm and delivery to the counting consumer.
        var brokerCPU: Double?
        if let brokerPID, let brokerBefore { brokerCPU = processCPUSeconds(brokerPID) - brokerBefore }
        let peak = worker.memory().peak
        worker.stop(grace: 60)
        try await channel.deleteQueue(replies)
        await connection.close()
        try await deleteQueues(queue, amqp: amqp)
        return DrainResult(
            rate: Double(count) / seconds, cpuPerTask: cpu / Double(count) * 1e6, peakMiB: peak,
            brokerCPUPerTask: brokerCPU.map { $0 / Double(count) * 1e6 })
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

    /// One line of the table: a row's min, median and max over the
    /// repetitions, and the median's ratio to its reference.
    struct Line {
        let name: String
        let unit: String
        let summary: Summary
        let ratio: Double?
        let target: String
    }

    /// The table's lines, in order, for the rows that ran.
    func lines(inFlight: Int, scaleWorkers: [Int]) -> [Line] {
        var lines: [Line] = []
        func median(_ key: String) -> Double { Summary(values[key] ?? []).median }
        // The rates' reference: the bare loop's best repetition, its
        // ceiling on this broker (the broker's garbage collection of the
        // filled queue slows some drains by half, the bare loop's and the
        // worker's alike: docs/performance.md). The CPU's reference: the
        // bare loop's median (CPU per message does not have two modes).
        let baseline = Summary(values["baseline"] ?? []).max
        let baselineCPU = median("baseline-cpu")
        func line(_ name: String, _ unit: String, _ key: String, ratio: Bool = false, target: String = "", against: Double? = nil) {
            guard let measured = values[key], !measured.isEmpty else { return }
            let summary = Summary(measured)
            // Against the consume baseline (row 1), or the given one.
            let reference = against ?? (ratio ? baseline : 0)
            lines.append(Line(name: name, unit: unit, summary: summary, ratio: reference > 0 ? summary.median / reference : nil, target: target))
        }
        // CPU per task beside each drain row, against the bare loop's CPU
        // per message.
        func cost(_ number: String, _ key: String, _ what: String = "", target: String = "") {
            line("\(number) worker CPU per task" + what, "us", "\(key)-cpu", target: target, against: baselineCPU)
        }
        line("1 baseline: rabbitmq-c consume+ack", "msg/s", "baseline", ratio: true)
        line("1 bare loop CPU per message", "us", "baseline-cpu", against: baselineCPU)
        line("1 broker CPU per message", "us", "baseline-broker-cpu")
        line("1b AMQP layer alone: consume+ack", "msg/s", "amqp-layer", ratio: true)
        line("1b AMQP layer CPU per message", "us", "amqp-layer-cpu", against: baselineCPU)
        line("1b broker CPU per message", "us", "amqp-layer-broker-cpu", against: median("baseline-broker-cpu"))
        line("2 drain, no reply_to", "tasks/s", "drain", ratio: true, target: ">= 0.70 x best baseline")
        cost("2", "drain", target: "<= 12 us (ratio vs row 1's CPU)")
        line("2 broker CPU per task", "us", "drain-broker-cpu", against: median("baseline-broker-cpu"))
        line("3 drain, results confirmed before ack", "tasks/s", "results", ratio: true, target: ">= 0.40 x best baseline")
        cost("3", "results", ", results")
        line("3 broker CPU per task, results", "us", "results-broker-cpu", against: median("baseline-broker-cpu"))
        line("4 RPC round trip p50", "ms", "p50", target: "<= 1.0 ms")
        line("4 RPC round trip p90", "ms", "p90")
        line("4 RPC round trip p99", "ms", "p99", target: "<= 5 ms")
        line("4 RPC throughput, \(inFlight) in flight", "tasks/s", "rpc-rate")
        line("5 enqueue, Swift client + confirms", "tasks/s", "enqueue", target: ">= 30000")
        line("6 worker RSS idle", "MiB", "idle")
        line("6 worker RSS peak under load", "MiB", "peak", target: "<= 50 MiB")
        line("7 drain, task + worker dependency", "tasks/s", "depends", ratio: true)
        cost("7", "depends", ", + dependency")
        line("7 drain, one SQLite State update", "tasks/s", "state", ratio: true)
        cost("7", "state", ", State update")
        line("7 broker CPU per task, State update", "us", "state-broker-cpu", against: median("baseline-broker-cpu"))
        line("7 drain, one Redis State update", "tasks/s", "state-redis", ratio: true)
        cost("7", "state-redis", ", Redis State")
        let publishBaseline = median("publish-baseline")
        line("8 baseline: C publish, confirms", "msg/s", "publish-baseline")
        line("9 enqueue, batch send (no reply_to)", "tasks/s", "batch", target: ">= 0.70 x row 8 (ratio vs row 8)", against: publishBaseline)
        let drain = median("drain")
        line("10 drain + SQLite result store", "tasks/s", "store-sqlite", target: ">= 0.50 x row 2 (ratio vs row 2)", against: drain)
        line("10 worker CPU per task, SQLite store", "us", "store-sqlite-worker-cpu", against: baselineCPU)
        line("10 drain + Redis result store", "tasks/s", "store-redis", target: ">= 0.50 x row 2 (ratio vs row 2)", against: drain)
        line("10 worker CPU per task, Redis store", "us", "store-redis-cpu", against: baselineCPU)
        let store = median("store-sqlite")
        line("11 drain + SQLite store + dashboard", "tasks/s", "dashboard-sqlite", target: ">= 0.90 x row 10 (ratio vs row 10)", against: store)
        line("11 same, / row 10 of its repetition", "ratio", "dashboard-paired", target: ">= 0.90")
        line("11 dashboard CPU over the drain", "s", "dashboard-cpu")
        line("11 dashboard CPU, % of one core", "%", "dashboard-cpu-percent")
        line("11 worker CPU per task, + dashboard", "us", "dashboard-worker-cpu", target: "(ratio vs row 10's)",
            against: median("store-sqlite-worker-cpu"))
        for workers in scaleWorkers {
            line("12 drain, \(workers) worker processes", "tasks/s", "scale-\(workers)", ratio: true)
            line("12 CPU per task, \(workers) workers (sum)", "us", "scale-\(workers)-cpu", against: baselineCPU)
        }
        return lines
    }

    func print(count: Int, inFlight: Int, scaleWorkers: [Int]) {
        Swift.print("")
        Swift.print(
            "row".padding(toLength: 38, withPad: " ", startingAt: 0) + "unit".padding(toLength: 9, withPad: " ", startingAt: 0)
                + "min".leftPadded(11) + "median".leftPadded(11) + "max".leftPadded(11) + "ratio".leftPadded(10)
                + "  target")
        for line in lines(inFlight: inFlight, scaleWorkers: scaleWorkers) {
            Swift.print(
                line.name.padding(toLength: 38, withPad: " ", startingAt: 0)
                    + line.unit.padding(toLength: 9, withPad: " ", startingAt: 0)
                    + [line.summary.min, line.summary.median, line.summary.max].map { Self.format($0).leftPadded(11) }.joined()
                    + (line.ratio.map { String(format: "%.2f", $0) } ?? "").leftPadded(10) + "  " + line.target)
        }
        Swift.print("ratio: a rate's median over the baseline's best (max) repetition; a CPU's median over the bare loop's median CPU per message; or as the target says")
        fflush(nil)
    }

    static func format(_ value: Double) -> String {
        value >= 100 ? String(Int(value.rounded())) : String(format: "%.2f", value)
    }
}

extension String {
    func leftPadded(_ width: Int) -> String {
        count >= width ? " " + self : String(repeating: " ", count: width - count) + self
    }
}

/// The scale row's workers' progress: per worker the tasks finished and
/// the monotonic clock at its first and latest task's end.
final class ScaleProgress: Sendable {
    private struct Worker {
        var finished = 0
        var first: UInt64 = 0
        var last: UInt64 = 0
    }
    private let workers: Mutex<[Worker]>

    init(workers: Int) { self.workers = Mutex(Array(repeating: Worker(), count: workers)) }

    /// Records a worker's line; true once the workers' tasks add up to `target`.
    func update(worker index: Int, finished: Int, first: UInt64, last: UInt64, target: Int) -> Bool {
        workers.withLock { workers in
            workers[index] = Worker(finished: finished, first: first, last: last)
            return workers.reduce(0) { $0 + $1.finished } >= target
        }
    }

    /// Seconds from the earliest first task to the latest task's end, once
    /// `target` tasks finished.
    func seconds(target: Int) -> Double? {
        workers.withLock { workers in
            guard workers.reduce(0, { $0 + $1.finished }) >= target else { return nil }
            let started = workers.filter { $0.finished > 0 }
            guard let first = started.map(\.first).min(), let last = started.map(\.last).max() else { return nil }
            return Double(last - first) / 1e9
        }
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
