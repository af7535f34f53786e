import Foundation
import QTasks
import QTasksTesting
import Synchronization
import Testing

/// Workflows end to end on the in-memory broker with a memory workflow
/// store: every shape (chain, group, chord, map, nesting) and every
/// failure policy.
@Suite(.timeLimit(.minutes(1)))
struct WorkflowMemoryTests {
    enum Flow {
        static let add = TaskDefinition("wf.add", arguments: Int.self, Int.self, returning: Int.self)
        static let mul = TaskDefinition("wf.mul", arguments: Int.self, Int.self, returning: Int.self)
        static let sum = TaskDefinition("wf.sum", arguments: [Int].self, returning: Int.self)
        static let double = TaskDefinition("wf.double", arguments: Int.self, returning: Int.self)
        /// Fails for the input 13.
        static let unlucky = TaskDefinition("wf.unlucky", arguments: Int.self, returning: Int.self)
        static let tally = TaskDefinition("wf.tally", arguments: [WorkflowMemberResult<Int>].self, returning: String.self)
        static let slow = TaskDefinition("wf.slow", arguments: Int.self, returning: Int.self)
    }

    struct Unlucky: Error, CustomStringConvertible {
        var description: String { "13 is unlucky" }
    }

    /// Counts calls per task and the most `wf.slow` calls running at once.
    final class Probe: Sendable {
        private let state = Mutex((calls: [String: Int](), running: 0, peak: 0))
        func called(_ name: String) { state.withLock { $0.calls[name, default: 0] += 1 } }
        func calls(_ name: String) -> Int { state.withLock { $0.calls[name, default: 0] } }
        func enter() { state.withLock { $0.running += 1; $0.peak = max($0.peak, $0.running) } }
        func leave() { state.withLock { $0.running -= 1 } }
        var peak: Int { state.withLock { $0.peak } }
    }

    func makeApp(_ probe: Probe) throws -> TaskApp {
        let app = TaskApp(name: "workflow-tests")
        try app.register(Flow.add) { a, b in probe.called("add"); return a + b }
        try app.register(Flow.mul) { a, b in probe.called("mul"); return a * b }
        try app.register(Flow.sum) { values in probe.called("sum"); return values.reduce(0, +) }
        try app.register(Flow.double) { value in probe.called("double"); return value * 2 }
        try app.register(Flow.unlucky) { value in
            probe.called("unlucky")
            guard value != 13 else { throw Unlucky() }
            return value
        }
        try app.register(Flow.tally) { outcomes in
            probe.called("tally")
            return "\(outcomes.filter(\.succeeded).count) ok, \(outcomes.filter { !$0.succeeded }.count) failed"
        }
        try app.register(Flow.slow) { value in
            probe.enter()
            defer { probe.leave() }
            try await Task.sleep(for: .milliseconds(5))
            return value
        }
        return app
    }

    func configuration(_ store: MemoryResultStore?, concurrency: Int = 16) -> WorkerConfiguration {
        var configuration = WorkerConfiguration(concurrency: concurrency, shutdownGracePeriod: .seconds(5))
        configuration.workflowStore = store
        return configuration
    }

    @Test func aChainPassesEachResultToTheNextStep() async throws {
        let probe = Probe()
        try await TestWorker.run(try makeApp(probe), configuration: configuration(MemoryResultStore())) { client, _ in
            // (2 + 2) * 4 + 1
            let chain = try Workflow.task(Flow.add, 2, 2).then(Flow.mul, 4).then(Flow.add, 1)
            #expect(try await client.send(chain).value(timeout: .seconds(10)) == 17)
        }
    }

    @Test func aChainRunsWithoutAStore() async throws {
        let probe = Probe()
        try await TestWorker.run(try makeApp(probe), configuration: configuration(nil)) { client, _ in
            let chain = try Workflow.task(Flow.add, 1, 2).then(Flow.double)
            #expect(try await client.send(chain).value(timeout: .seconds(10)) == 6)
        }
    }

    @Test func aGroupYieldsItsResultsInMemberOrder() async throws {
        let probe = Probe()
        try await TestWorker.run(try makeApp(probe), configuration: configuration(MemoryResultStore())) { client, _ in
            let group = Workflow.group(try (0..<20).map { try Workflow.task(Flow.add, $0, 100) })
            #expect(try await client.send(group).value(timeout: .seconds(10)) == (0..<20).map { $0 + 100 })
        }
    }

    @Test func aChordRunsItsCallbackOnceWithEveryResult() async throws {
        let probe = Probe()
        try await TestWorker.run(try makeApp(probe), configuration: configuration(MemoryResultStore())) { client, _ in
            let chord = try Workflow.chord(try (1...100).map { try Workflow.task(Flow.double, $0) }, then: Flow.sum)
            #expect(try await client.send(chord).value(timeout: .seconds(10)) == 2 * 5050)
            #expect(probe.calls("sum") == 1)
            #expect(probe.calls("double") == 100)
        }
    }

    @Test func aMapRunsAtMostItsBoundAtOnce() async throws {
        let probe = Probe()
        try await TestWorker.run(try makeApp(probe), configuration: configuration(MemoryResultStore(), concurrency: 32)) { client, _ in
            let map = try Workflow.map(Flow.slow, over: Array(0..<200), maxConcurrent: 5)
            #expect(try await client.send(map).value(timeout: .seconds(30)) == Array(0..<200))
            #expect(probe.peak <= 5)
            #expect(probe.peak >= 2, "the bound is reached, not just respected by running one at a time")
        }
    }

    @Test func nestedShapesCompose() async throws {
        let probe = Probe()
        try await TestWorker.run(try makeApp(probe), configuration: configuration(MemoryResultStore())) { client, _ in
            // add(1, 2) = 3 → group [double(3) → add(_, 1), mul(3, 10)] = [7, 30] → sum = 37
            let members = Workflow.group([
                try Workflow.step(Flow.double).then(Flow.add, 1),
                try Workflow.step(Flow.mul, 10),
            ])
            let flow = try Workflow.task(Flow.add, 1, 2).then(members).then(Flow.sum)
            #expect(try await client.send(flow).value(timeout: .seconds(10)) == 37)
        }
    }

    @Test func failFastFailsTheWorkflowAndSkipsTheCallback() async throws {
        let probe = Probe()
        let store = MemoryResultStore()
        try await TestWorker.run(try makeApp(probe), configuration: configuration(store)) { client, broker in
            let chord = try Workflow.chord(try [1, 13, 3].map { try Workflow.task(Flow.unlucky, $0) }, then: Flow.sum)
            let handle = try await client.send(chord)
            let error = await #expect(throws: TaskFailedError.self) { _ = try await handle.value(timeout: .seconds(10)) }
            #expect(error?.message.contains("13 is unlucky") == true)
            #expect(probe.calls("sum") == 0)
            let record = try await store.workflowRecord(for: handle.uuid)
            #expect(record?.status == .error)
            // The failed member is dead-lettered, naming its workflow.
            let dead = try await waitFor { broker.messages(in: "default.dlq") }
            let message = try TaskMessage(jsonBytes: dead[0].body)
            #expect(message.workflow?.id == handle.uuid)
        }
    }

    @Test func failFastStartsNoFurtherMembersOfAMap() async throws {
        let probe = Probe()
        try await TestWorker.run(try makeApp(probe), configuration: configuration(MemoryResultStore())) { client, _ in
            let map = try Workflow.map(Flow.unlucky, over: [1, 13, 3, 4, 5, 6], maxConcurrent: 1)
            let handle = try await client.send(map)
            await #expect(throws: TaskFailedError.self) { _ = try await handle.value(timeout: .seconds(10)) }
            #expect(probe.calls("unlucky") == 2, "members after the failed one were never started")
        }
    }

    @Test func allSettledGivesTheCallbackEveryOutcome() async throws {
        let probe = Probe()
        try await TestWorker.run(try makeApp(probe), configuration: configuration(MemoryResultStore())) { client, _ in
            let header = Workflow.group(try [1, 13, 3].map { try Workflow.task(Flow.unlucky, $0) }).settled()
            let flow = try header.then(Flow.tally)
            #expect(try await client.send(flow, policy: .allSettled).value(timeout: .seconds(10)) == "2 ok, 1 failed")
            let outcomes = try await client.send(header, policy: .allSettled).value(timeout: .seconds(10))
            #expect(outcomes.map(\.status) == [.success, .error, .success])
            #expect(outcomes[1].error?.contains("13 is unlucky") == true)
            #expect(outcomes[2].returning == 3)
        }
    }

    @Test func continueSkipsFailedMembersAndListsTheirErrors() async throws {
        let probe = Probe()
        let store = MemoryResultStore()
        try await TestWorker.run(try makeApp(probe), configuration: configuration(store)) { client, _ in
            let chord = try Workflow.chord(try [1, 13, 3].map { try Workflow.task(Flow.unlucky, $0) }, then: Flow.sum)
            let handle = try await client.send(chord, policy: .continueOnFailure)
            #expect(try await handle.value(timeout: .seconds(10)) == 4)
            let record = try await store.workflowRecord(for: handle.uuid)
            #expect(record?.status == .success)
        }
    }

    @Test func aGroupWithoutAStoreIsRefusedLoudly() async throws {
        let probe = Probe()
        try await TestWorker.run(try makeApp(probe), configuration: configuration(nil)) { client, broker in
            let group = Workflow.group([try Workflow.task(Flow.add, 1, 1)])
            let handle = try await client.send(group)
            let error = await #expect(throws: TaskFailedError.self) { _ = try await handle.value(timeout: .seconds(10)) }
            #expect(error?.message.contains("no workflow store") == true)
            #expect(try await waitFor { broker.messages(in: "default.dlq") }.count == 1)
            #expect(probe.calls("add") == 0)
        }
    }

    @Test func aWorkflowDeliveredTwiceRunsEachStepOnce() async throws {
        let probe = Probe()
        let store = MemoryResultStore()
        try await TestWorker.run(try makeApp(probe), configuration: configuration(store, concurrency: 4)) { _, broker in
            let chord = try Workflow.chord(try (1...3).map { try Workflow.task(Flow.double, $0) }, then: Flow.sum)
            // The starting message twice, as a broker redelivers a message
            // whose ack was lost: every step it leads to is published
            // twice too, and runs once.
            var start = TaskMessage(taskName: WorkflowContext.startTaskName)
            start.workflow = WorkflowContext(id: start.uuid, policy: .failFast, replyTo: nil, start: chord.step.withFreshIDs())
            for _ in 0..<2 {
                try await broker.publish(Message(body: start.jsonBytes()), to: "default", mandatory: true)
            }
            let record = try await waitFor {
                try await store.workflowRecord(for: start.uuid).flatMap { $0.status.isFinal ? [$0] : nil } ?? []
            }
            #expect(record.first?.result == 12)
            try await waitFor { broker.unackedCount == 0 && broker.readyCount(in: "default") == 0 ? [true] : [] }
            #expect(probe.calls("double") == 3)
            #expect(probe.calls("sum") == 1)
        }
    }

    /// Polls `read` until it returns a non-empty array (the memory broker
    /// has no notification for dead letters).
    @discardableResult
    func waitFor<T>(_ read: () async throws -> [T]) async throws -> [T] {
        let deadline = ContinuousClock.now + .seconds(10)
        while ContinuousClock.now < deadline {
            let values = try await read()
            if !values.isEmpty { return values }
            try await Task.sleep(for: .milliseconds(10))
        }
        return try await read()
    }
}
