import ArgumentParser
import Foundation
import Logging
import QTasks
import QTasksRabbitMQ
import QTasksResultStores
import QTasksState
import QTasksStateStores
import ServiceLifecycle
import Synchronization

/// `qtasks-benchmark worker`: the worker under test, in its own process like
/// a production worker. It registers `noop` and prints `drained <seconds>`
/// on standard output once `--count` tasks have run, timed from the first
/// task's start.
struct BenchmarkWorker: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "worker", abstract: "Run the worker under test (started by the benchmark itself).")

    @Option var url: String
    @Option var queue: String
    @Option(help: "Handlers at once (default: the library's WorkerConfiguration default).") var concurrency: Int?
    @Option(help: "Prefetch (default: the library's WorkerConfiguration default).") var prefetch: Int?
    @Option(help: "Print 'drained' after this many tasks (0: never).") var count: Int = 0
    @Option(help: "State store for noop_state (sqlite:///path, redis://host:port/db).") var stateURL: String?
    @Option(help: "Time-to-live of noop_state's states, in seconds (none by default).") var stateTTL: Int?
    @Option(help: "Record task events in this result store; print 'recorded' once --count tasks are in it.")
    var resultStore: String?
    @Option(help: "Time-to-live of the result store's records, in seconds.") var resultTTL: Int = 600
    @Flag(help: "Print 'progress <finished> <first>/<last>' (CLOCK_MONOTONIC nanoseconds of the first and latest task's end) every 10 ms while tasks finish: the scale row adds up several workers.")
    var progress = false

    func run() async throws {
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = .warning
            return handler
        }
        let progress = Progress(target: count)
        if self.progress {
            // A thread of its own: it only reads the counter.
            Thread.detachNewThread {
                var printed = -1
                while true {
                    usleep(10_000)
                    let (finished, first, last) = progress.snapshot()
                    if finished != printed {
                        print("progress \(finished) \(first)/\(last)")
                        fflush(nil)
                        printed = finished
                    }
                }
            }
        }
        let app = TaskApp(name: "benchmark")
        try app.register(BenchmarkTasks.noop) { progress.taskFinished() }

        // One task-scoped and one worker-scoped dependency per task.
        let shared = Dependency<Counter>("shared-counter", scope: .worker) { _ in Counter() }
        let perTask = Dependency<Counter>("per-task-resource") { _ in
            .value(Counter(), teardown: { counter, _ in counter.increment() })
        }
        try app.register(BenchmarkTasks.noopDepends) { (context: TaskContext) in
            _ = try await context.resolve(perTask)
            try await context.resolve(shared).increment()
            progress.taskFinished()
        }

        // One State update per task (its own key: a workflow step).
        if let stateURL {
            let store = try await StateStores.open(url: stateURL)
            let ttl = stateTTL.map { Duration.seconds($0) }
            try app.register(BenchmarkTasks.noopState) { (context: TaskContext) in
                try await store.update(["step": 1, "done": true], in: StateID(namespace: "benchmark", key: context.uuid), ttl: ttl)
                progress.taskFinished()
            }
        }

        let broker = try RabbitMQBroker(url: url)
        try await broker.connect()  // before "ready": the benchmark times from it
        var configuration = WorkerConfiguration()
        if let resultStore {
            let store = try await ResultStores.open(
                url: resultStore,
                configuration: ResultStoreConfiguration(timeToLive: .seconds(resultTTL), keyPrefix: "qtasks-benchmark-\(getpid())"))
            configuration.events = TaskEventRecording(sinks: [RecordedCounter(store: store, progress: progress)])
        }
        configuration.queues = [queue]
        if let concurrency { configuration.concurrency = concurrency }
        if let prefetch { configuration.prefetch = prefetch }
        configuration.logger.logLevel = .warning
        let worker = Worker(broker: broker, app: app, configuration: configuration)
        print("ready")
        fflush(nil)
        progress.cpuAtReady = ownCPUSeconds()
        let group = ServiceGroup(
            configuration: ServiceGroupConfiguration(
                services: [.init(service: broker), .init(service: worker)], gracefulShutdownSignals: [.sigterm, .sigint],
                logger: Logger(label: "benchmark.worker")))
        try await group.run()
    }
}

/// Counts finished tasks; prints the drain time once the target is reached.
final class Progress: Sendable {
    private struct State {
        var first: ContinuousClock.Instant?
        var finished = 0
        var recorded = 0
        var firstNanoseconds: UInt64 = 0
        var lastNanoseconds: UInt64 = 0
    }
    private let state = Mutex(State())
    private let target: Int
    private let readyCPU = Mutex(0.0)
    /// The process's CPU seconds when it printed `ready`.
    var cpuAtReady: Double {
        get { readyCPU.withLock { $0 } }
        set { readyCPU.withLock { $0 = newValue } }
    }

    init(target: Int) { self.target = target }

    func taskFinished() {
        let elapsed: Duration? = state.withLock { state in
            let now = ContinuousClock.now
            let nanoseconds = Self.monotonicNanoseconds()
            if state.first == nil {
                state.first = now
                state.firstNanoseconds = nanoseconds
            }
            state.lastNanoseconds = nanoseconds
            state.finished += 1
            return state.finished == target ? now - state.first! : nil
        }
        if let elapsed {
            // With this process's CPU since `ready` (getrusage: finer than
            // /proc's clock ticks).
            print("drained \(elapsed.seconds) cpu \(ownCPUSeconds() - cpuAtReady)")
            fflush(nil)
        }
    }

    /// Tasks finished so far, and the system-wide monotonic clock (in
    /// nanoseconds) at the first and the latest one's end: comparable
    /// between processes on one machine.
    func snapshot() -> (finished: Int, first: UInt64, last: UInt64) {
        state.withLock { ($0.finished, $0.firstNanoseconds, $0.lastNanoseconds) }
    }

    static func monotonicNanoseconds() -> UInt64 {
        var time = timespec()
        clock_gettime(CLOCK_MONOTONIC, &time)
        return UInt64(time.tv_sec) * 1_000_000_000 + UInt64(time.tv_nsec)
    }

    /// `count` more tasks are in the result store with their end state.
    func tasksRecorded(_ count: Int) {
        let elapsed: Duration? = state.withLock { state in
            let before = state.recorded
            state.recorded += count
            guard before < target, state.recorded >= target, let first = state.first else { return nil }
            return ContinuousClock.now - first
        }
        if let elapsed {
            print("recorded \(elapsed.seconds)")
            fflush(nil)
        }
    }
}

/// The result store, counting the tasks whose end was written: the
/// store rows time the drain until the last record is in the store, not
/// only until the last task ran.
struct RecordedCounter: TaskEventSink, CustomStringConvertible {
    let store: any ResultStore
    let progress: Progress

    var description: String { String(describing: store) }

    func record(_ events: [TaskEvent]) async throws {
        try await store.record(events)
        progress.tasksRecorded(events.count { $0.kind == .succeeded })
    }

    func recordHeartbeat(_ heartbeat: WorkerHeartbeat) async throws {
        try await store.recordHeartbeat(heartbeat)
    }
}

/// A tiny resource for the dependency row.
final class Counter: Sendable {
    private let value = Mutex(0)
    func increment() { value.withLock { $0 += 1 } }
}
