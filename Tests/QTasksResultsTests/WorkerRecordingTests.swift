import Foundation
import Logging
import MetricsTestKit
import QTasks
import QTasksTesting
import QTasksW3CTracing
import Synchronization
import Testing

private enum Tasks {
    static let add = TaskDefinition("add", arguments: Int.self, Int.self, returning: Int.self)
    static let flaky = TaskDefinition(
        "flaky", arguments: String.self, returning: String.self,
        options: TaskOptions(retry: RetryPolicy(maxAttempts: 3, backoff: Backoff(initial: .milliseconds(10), multiplier: 1, maximum: .milliseconds(10), jitter: 0))))
    static let boom = TaskDefinition("boom", returning: Int.self)
    static let giveUp = TaskDefinition("give_up", returning: Int.self)
    static let login = TaskDefinition(
        "login", arguments: String.self, String.self, returning: Bool.self, options: TaskOptions(recordsArguments: false))
    static let echo = TaskDefinition("echo", arguments: String.self, returning: Int.self)
}

private struct Boom: Error, CustomStringConvertible {
    var description: String { "it went boom" }
}

/// A sink that can be made to fail, or to hang, on demand.
private final class ControlledSink: TaskEventSink, CustomStringConvertible {
    enum Mode { case working, failing, hanging }
    let mode = Mutex(Mode.working)
    let events = Mutex<[TaskEvent]>([])
    let heartbeats = Mutex<[WorkerHeartbeat]>([])
    let calls = Mutex(0)
    var description: String { "ControlledSink" }

    struct Down: Error {}

    func record(_ batch: [TaskEvent]) async throws {
        calls.withLock { $0 += 1 }
        switch mode.withLock({ $0 }) {
        case .working: events.withLock { $0 += batch }
        case .failing: throw Down()
        case .hanging: await withCheckedContinuation { (_: CheckedContinuation<Void, Never>) in }
        }
    }

    func recordHeartbeat(_ heartbeat: WorkerHeartbeat) async throws {
        switch mode.withLock({ $0 }) {
        case .working: heartbeats.withLock { $0.append(heartbeat) }
        case .failing: throw Down()
        case .hanging: await withCheckedContinuation { (_: CheckedContinuation<Void, Never>) in }
        }
    }

    func kinds(of uuid: String) -> [TaskEvent.Kind] {
        events.withLock { $0.filter { $0.uuid == uuid }.map(\.kind) }
    }
}

private final class RunCounter: Sendable {
    private let count = Mutex(0)
    func next() -> Int { count.withLock { $0 += 1; return $0 } }
}

private func makeApp() throws -> TaskApp {
    let flakyRuns = RunCounter()
    let app = TaskApp()
    try app.register(Tasks.add) { a, b in a + b }
    try app.register(Tasks.flaky) { text in
        if flakyRuns.next() == 1 { throw Boom() }
        return text.uppercased()
    }
    try app.register(Tasks.boom) { () async throws -> Int in throw Boom() }
    try app.register(Tasks.giveUp) { (context: TaskContext) async throws -> Int in try context.cancel(reason: "nothing to do") }
    try app.register(Tasks.login) { _, _ in true }
    try app.register(Tasks.echo) { text in text.count }
    return app
}

private func recordingConfiguration(_ sinks: [any TaskEventSink], _ adjust: (inout TaskEventRecording) -> Void = { _ in }) -> WorkerConfiguration {
    var configuration = WorkerConfiguration(shutdownGracePeriod: .seconds(5))
    var recording = TaskEventRecording(sinks: sinks, workerID: "test-worker", heartbeatInterval: .milliseconds(100), flushInterval: .milliseconds(10))
    adjust(&recording)
    configuration.events = recording
    return configuration
}

@Suite("Worker recording of task events")
struct WorkerRecordingTests {
    @Test func everyOutcomeIsRecordedInTheStore() async throws {
        let store = MemoryResultStore()
        let app = try makeApp()
        try await TestWorker.run(app, configuration: recordingConfiguration([store])) { client, _ in
            let add = try await client.send(Tasks.add, 2, 3)
            #expect(try await add.value(timeout: .seconds(30)) == 5)
            let flaky = try await client.send(Tasks.flaky, "hi")
            #expect(try await flaky.value(timeout: .seconds(30)) == "HI")
            let boom = try await client.send(Tasks.boom)
            await #expect(throws: TaskFailedError.self) { _ = try await boom.value(timeout: .seconds(30)) }
            let giveUp = try await client.send(Tasks.giveUp)
            await #expect(throws: TaskFailedError.self) { _ = try await giveUp.value(timeout: .seconds(30)) }

            let sum = try await store.value(of: Tasks.add, uuid: add.uuid, timeout: .seconds(30))
            #expect(sum == 5)
            let added = try #require(try await store.record(for: add.uuid))
            #expect(added.arguments == RecordedArguments(args: [2, 3], kwargs: [:]))
            #expect(added.workerID == "test-worker")
            #expect(added.queue == "default")
            #expect(added.events.map(\.kind) == [.received, .started, .succeeded])
            #expect(added.duration != nil)

            let retried = try await store.waitForRecord(of: flaky.uuid, timeout: .seconds(30))
            #expect(retried.status == .success)
            #expect(retried.result == "HI")
            #expect(retried.attempt == 2)
            #expect(retried.events.map(\.kind) == [.received, .started, .retried, .received, .started, .succeeded])
            #expect(retried.events[2].retryDelay == .milliseconds(10))
            #expect(retried.events[2].failure?.message == "it went boom")

            let failed = try await store.waitForRecord(of: boom.uuid, timeout: .seconds(30))
            #expect(failed.status == .error)
            #expect(failed.deadLetterQueue == "default.dlq")
            #expect(failed.failure?.type == "Boom")
            #expect(failed.failure?.traceback.contains("it went boom") == true)
            #expect(failed.events.map(\.kind) == [.received, .started, .failed, .deadLettered])

            let cancelled = try await store.waitForRecord(of: giveUp.uuid, timeout: .seconds(30))
            #expect(cancelled.status == .cancel)

            let failures = try await store.records(matching: TaskRecordQuery(statuses: [.error]))
            #expect(failures.map(\.uuid) == [boom.uuid])
        }
    }

    @Test func badInputIsRecordedUnderTheMessagesUUID() async throws {
        let store = MemoryResultStore()
        try await TestWorker.run(try makeApp(), configuration: recordingConfiguration([store])) { client, _ in
            let handle = try await client.send("no_such_task", args: [1])
            await #expect(throws: TaskFailedError.self) { _ = try await handle.value(timeout: .seconds(30)) }
            let record = try await store.waitForRecord(of: handle.uuid, timeout: .seconds(30))
            #expect(record.taskName == "no_such_task")
            #expect(record.status == .error)
            #expect(record.deadLetterQueue == "default.dlq")
            #expect(record.events.map(\.kind) == [.received, .failed, .deadLettered])
            #expect(record.failure?.message.contains("no_such_task") == true)
        }
    }

    @Test func secretArgumentsAreLeftOutAndLargeOnesCut() async throws {
        let store = MemoryResultStore()
        let configuration = recordingConfiguration([store]) { $0.maxArgumentBytes = 64 }
        try await TestWorker.run(try makeApp(), configuration: configuration) { client, _ in
            let login = try await client.send(Tasks.login, "ann", "hunter2")
            #expect(try await login.value(timeout: .seconds(30)))
            let echo = try await client.send(Tasks.echo, String(repeating: "x", count: 1000))
            #expect(try await echo.value(timeout: .seconds(30)) == 1000)

            let secret = try await store.waitForRecord(of: login.uuid, timeout: .seconds(30))
            #expect(secret.arguments == .omitted)
            let large = try await store.waitForRecord(of: echo.uuid, timeout: .seconds(30))
            #expect(large.arguments?.truncated == true)
            #expect((large.arguments?.text?.utf8.count ?? 0) <= 64)
        }
    }

    /// A secret argument of the wrong type (a card number sent as a JSON
    /// number to a String parameter) is bad input: its error goes to the
    /// record, the events exchange and the log, so it must not quote the
    /// value.
    @Test func aSecretArgumentOfTheWrongTypeIsNotQuotedInTheError() async throws {
        let store = MemoryResultStore()
        try await TestWorker.run(try makeApp(), configuration: recordingConfiguration([store])) { client, _ in
            let positional = try await client.send("login", args: [4_111_111_111_111_112, "hunter2"])
            await #expect(throws: TaskFailedError.self) { _ = try await positional.value(timeout: .seconds(30)) }
            let byName = try await client.send("login", args: ["ann", 9_876_543_210])
            await #expect(throws: TaskFailedError.self) { _ = try await byName.value(timeout: .seconds(30)) }
            for uuid in [positional.uuid, byName.uuid] {
                let record = try await store.waitForRecord(of: uuid, timeout: .seconds(30))
                #expect(record.status == .error)
                let failure = try #require(record.failure)
                #expect(failure.message.contains("expected String, found number"))
                for text in [failure.message, failure.traceback ?? ""] {
                    #expect(!text.contains("4111111111111112"))
                    #expect(!text.contains("9876543210"))
                }
            }
            // A task whose arguments are not secret still quotes what it found.
            let echo = try await client.send("echo", args: [12345])
            await #expect(throws: TaskFailedError.self) { _ = try await echo.value(timeout: .seconds(30)) }
            let record = try await store.waitForRecord(of: echo.uuid, timeout: .seconds(30))
            #expect(record.failure?.message.contains("found number 12345") == true)
        }
    }

    @Test func theTraceIDOfTheDeliverysSpanIsRecorded() async throws {
        let store = MemoryResultStore()
        var configuration = recordingConfiguration([store])
        configuration.tracer = W3CTracer()
        try await TestWorker.run(try makeApp(), configuration: configuration) { client, _ in
            let handle = try await client.send(Tasks.add, 1, 1)
            _ = try await handle.value(timeout: .seconds(30))
            let record = try await store.waitForRecord(of: handle.uuid, timeout: .seconds(30))
            let traceID = try #require(record.traceID)
            #expect(traceID.count == 32)
            let isHex = traceID.allSatisfy { $0.isHexDigit }
            #expect(isHex)
            guard case .string(let traceparent)? = handle.resultHeaders?["traceparent"] else {
                Issue.record("the result carries no traceparent")
                return
            }
            #expect(traceparent.contains(traceID))
        }
    }

    @Test func aSinkThatFailsNeitherBlocksAcksNorLosesEventsOnceItIsBack() async throws {
        let sink = ControlledSink()
        sink.mode.withLock { $0 = .failing }
        let metrics = TestMetrics()
        var configuration = recordingConfiguration([sink])
        configuration.metricsFactory = metrics
        try await TestWorker.run(try makeApp(), configuration: configuration) { client, broker in
            var handles: [TaskHandle<Int>] = []
            for index in 0..<20 { handles.append(try await client.send(Tasks.add, index, 1)) }
            for (index, handle) in handles.enumerated() {
                #expect(try await handle.value(timeout: .seconds(30)) == index + 1)
            }
            // Every task settled while the sink refused every batch. (A
            // result is published before its delivery is acknowledged, so
            // the last ack may follow the last result by a moment.)
            let settled = await eventually {
                broker.readyCount(in: "default") == 0 && broker.unackedCount(in: "default") == 0
            }
            #expect(settled)
            #expect(sink.events.withLock { $0.isEmpty })
            let refused = await eventually { sink.calls.withLock { $0 } >= 1 }
            #expect(refused)
            sink.mode.withLock { $0 = .working }
            let caughtUp = await eventually {
                handles.allSatisfy { sink.kinds(of: $0.uuid) == [.received, .started, .succeeded] }
            }
            #expect(caughtUp)
        }
        let failedWrites = try metrics.expectCounter("qtasks_event_writes_failed_total", [("sink", "ControlledSink")])
        #expect(failedWrites.totalValue >= 1)
    }

    @Test func pastItsCapacityTheBufferDropsTheOldestAndCountsThem() async throws {
        let sink = ControlledSink()
        sink.mode.withLock { $0 = .failing }
        // A second sink that works: the worker appends a task's events to
        // every sink's buffer in one call, the failing one first, so once
        // this one has a task's end, the failing buffer has it too.
        let witness = MemoryResultStore()
        let metrics = TestMetrics()
        var configuration = recordingConfiguration([sink, witness]) { $0.bufferCapacity = 9 }
        configuration.metricsFactory = metrics
        var uuids: [String] = []
        try await TestWorker.run(try makeApp(), configuration: configuration) { client, _ in
            for index in 0..<10 {
                let handle = try await client.send(Tasks.add, index, 0)
                _ = try await handle.value(timeout: .seconds(30))
                uuids.append(handle.uuid)
                // The client has the result before the worker appends the
                // task's `succeeded` (after the ack): on a loaded machine the
                // next task's `received` came first once, and the newest 9
                // events were not the last 3 tasks'. Each task's events are
                // in before the next is sent.
                let ended = try await eventually(timeout: .seconds(30)) {
                    try await witness.record(for: handle.uuid)?.status == .success
                }
                #expect(ended)
            }
            // 30 events into a buffer of 9: 21 dropped, the newest 9 kept.
            let dropped = await eventually(timeout: .seconds(30)) {
                (try? metrics.expectCounter("qtasks_events_dropped_total", [("sink", "ControlledSink")]).totalValue) == 21
            }
            #expect(dropped)
            sink.mode.withLock { $0 = .working }
            // The pump retries after a pause that doubles up to 5 s.
            let written = await eventually(timeout: .seconds(30)) { sink.events.withLock { $0.count } == 9 }
            #expect(written)
            #expect(uuids.suffix(3).allSatisfy { sink.kinds(of: $0) == [.received, .started, .succeeded] })
            #expect(uuids.prefix(7).allSatisfy { sink.kinds(of: $0).isEmpty })
        }
    }

    /// Without the bound on the last flush the worker would never stop: the
    /// time limit fails the test then instead of hanging the suite.
    @Test(.timeLimit(.minutes(1)))
    func aHangingSinkDoesNotKeepTheWorkerFromStopping() async throws {
        let sink = ControlledSink()
        let configuration = recordingConfiguration([sink]) { $0.shutdownFlushTimeout = .milliseconds(200) }
        let app = try makeApp()
        let broker = MemoryBroker()
        try await broker.declareTaskQueue("default")
        let worker = Worker(broker: broker, app: app, configuration: configuration)
        var stopping = ContinuousClock.now
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await worker.run() }
            try await TaskClient.withClient(broker: broker) { client in
                let first = try await client.send(Tasks.add, 1, 2)
                #expect(try await first.value(timeout: .seconds(30)) == 3)
                sink.mode.withLock { $0 = .hanging }
                let second = try await client.send(Tasks.add, 2, 2)
                #expect(try await second.value(timeout: .seconds(30)) == 4)
            }
            stopping = ContinuousClock.now
            worker.triggerGracefulShutdown()
            try await group.waitForAll()
        }
        let stopped = ContinuousClock.now - stopping
        await broker.close()
        // Nothing runs any more: the stop waits for the sink only, its flush
        // timeout (0.2 s) and a second. The bound is loose for a loaded
        // machine; what matters is that the stop ends.
        #expect(stopped < .seconds(15))
    }

    @Test func heartbeatsListTheWorkerWhileItRunsAndItLeavesAtShutdown() async throws {
        let store = MemoryResultStore()
        var configuration = recordingConfiguration([store])
        configuration.queues = ["default", "other"]
        configuration.concurrency = 4
        try await TestWorker.run(try makeApp(), configuration: configuration) { client, _ in
            _ = try await client.send(Tasks.add, 1, 1).value(timeout: .seconds(30))
            let listed = try await eventually {
                try await store.liveWorkers().first.map { $0.processed == 1 } ?? false
            }
            #expect(listed)
            let worker = try #require(try await store.liveWorkers().first)
            #expect(worker.workerID == "test-worker")
            #expect(worker.queues == ["default", "other"])
            #expect(worker.concurrency == 4)
            #expect(worker.pid == Int(ProcessInfo.processInfo.processIdentifier))
            #expect(worker.version == QTasksVersion.current)
            #expect(worker.expiresAt > worker.sentAt)
        }
        #expect(try await store.liveWorkers().isEmpty)
    }
}

@Suite("Reading stored results through the client")
struct ClientStoredResultTests {
    @Test func aClientReadsTheTypedResultOfATaskSentWithoutAReply() async throws {
        let store = MemoryResultStore()
        let app = try makeApp()
        try await TestWorker.run(app, configuration: recordingConfiguration([store])) { _, broker in
            // Sent without a reply by one client; read back by another, as a
            // restarted producer would.
            let sent = try await TaskClient.withClient(broker: broker) { client in
                try await client.sendWithoutReply(Tasks.add, 20, 22)
            }
            let failed = try await TaskClient.withClient(broker: broker) { client in
                try await client.sendWithoutReply(Tasks.boom)
            }
            try await TaskClient.withClient(broker: broker, resultStore: store) { client in
                let sum = try await client.storedValue(of: Tasks.add, uuid: sent.uuid, timeout: .seconds(30))
                #expect(sum == 42)
                let error = await #expect(throws: TaskFailedError.self) {
                    _ = try await client.storedValue(of: Tasks.boom, uuid: failed.uuid, timeout: .seconds(30))
                }
                #expect(error?.message == "it went boom")
                let record = try await client.storedRecord(of: sent.uuid)
                #expect(record?.status == .success)
            }
            try await TaskClient.withClient(broker: broker) { client in
                let error = await #expect(throws: TaskClientError.self) {
                    _ = try await client.storedResult(of: sent.uuid, timeout: .seconds(1))
                }
                #expect(error?.code == .noResultStore)
            }
        }
    }
}
