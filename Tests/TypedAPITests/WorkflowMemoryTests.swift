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
        static let collect = TaskDefinition("wf.collect", arguments: [Int].self, returning: [Int].self)
        /// Fails for 2 while the probe says it is broken.
        static let fragile = TaskDefinition("wf.fragile", arguments: Int.self, returning: Int.self)
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
        let broken = Mutex(true)
        /// Set by a test to let `wf.slow` runs of 1,000 and up end.
        let released = Mutex(false)
        /// Set by a test to hold `wf.slow` runs until two ran at once.
        let wantsOverlap = Mutex(false)
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
        try app.register(Flow.fragile) { value in
            probe.called("fragile")
            if value == 2, probe.broken.withLock({ $0 }) { throw Unlucky() }
            return value
        }
        try app.register(Flow.collect) { values in values }
        try app.register(Flow.slow) { value in
            probe.enter()
            defer { probe.leave() }
            if value >= 1000 {
                // 1,000 and up: running until the test releases it (60 s at
                // most), so that a second delivery overlaps it however slow
                // the machine (a fixed 0.3 s assumed the second came sooner).
                let deadline = ContinuousClock.now + .seconds(60)
                while !probe.released.withLock({ $0 }), ContinuousClock.now < deadline {
                    try await Task.sleep(for: .milliseconds(5))
                }
            } else {
                // Held until two ran at once (10 s at most) when the test
                // asks: whether the bound lets two run shows however slowly
                // a loaded machine hands the steps over.
                let deadline = ContinuousClock.now + .seconds(10)
                while probe.wantsOverlap.withLock({ $0 }), probe.peak < 2, ContinuousClock.now < deadline {
                    try await Task.sleep(for: .milliseconds(5))
                }
                try await Task.sleep(for: .milliseconds(5))
            }
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
            #expect(try await client.send(chain).value(timeout: .seconds(30)) == 17)
        }
    }

    @Test func aChainRunsWithoutAStore() async throws {
        let probe = Probe()
        try await TestWorker.run(try makeApp(probe), configuration: configuration(nil)) { client, _ in
            let chain = try Workflow.task(Flow.add, 1, 2).then(Flow.double)
            #expect(try await client.send(chain).value(timeout: .seconds(30)) == 6)
        }
    }

    @Test func aGroupYieldsItsResultsInMemberOrder() async throws {
        let probe = Probe()
        try await TestWorker.run(try makeApp(probe), configuration: configuration(MemoryResultStore())) { client, _ in
            let group = Workflow.group(try (0..<20).map { try Workflow.task(Flow.add, $0, 100) })
            #expect(try await client.send(group).value(timeout: .seconds(30)) == (0..<20).map { $0 + 100 })
        }
    }

    @Test func aChordRunsItsCallbackOnceWithEveryResult() async throws {
        let probe = Probe()
        try await TestWorker.run(try makeApp(probe), configuration: configuration(MemoryResultStore())) { client, _ in
            let chord = try Workflow.chord(try (1...100).map { try Workflow.task(Flow.double, $0) }, then: Flow.sum)
            #expect(try await client.send(chord).value(timeout: .seconds(30)) == 2 * 5050)
            #expect(probe.calls("sum") == 1)
            #expect(probe.calls("double") == 100)
        }
    }

    @Test func aMapRunsAtMostItsBoundAtOnce() async throws {
        let probe = Probe()
        probe.wantsOverlap.withLock { $0 = true }
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
            #expect(try await client.send(flow).value(timeout: .seconds(30)) == 37)
        }
    }

    @Test func failFastFailsTheWorkflowAndSkipsTheCallback() async throws {
        let probe = Probe()
        let store = MemoryResultStore()
        try await TestWorker.run(try makeApp(probe), configuration: configuration(store)) { client, broker in
            let chord = try Workflow.chord(try [1, 13, 3].map { try Workflow.task(Flow.unlucky, $0) }, then: Flow.sum)
            let handle = try await client.send(chord)
            let error = await #expect(throws: TaskFailedError.self) { _ = try await handle.value(timeout: .seconds(30)) }
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
            await #expect(throws: TaskFailedError.self) { _ = try await handle.value(timeout: .seconds(30)) }
            #expect(probe.calls("unlucky") == 2, "members after the failed one were never started")
        }
    }

    @Test func allSettledGivesTheCallbackEveryOutcome() async throws {
        let probe = Probe()
        try await TestWorker.run(try makeApp(probe), configuration: configuration(MemoryResultStore())) { client, _ in
            let header = Workflow.group(try [1, 13, 3].map { try Workflow.task(Flow.unlucky, $0) }).settled()
            let flow = try header.then(Flow.tally)
            #expect(try await client.send(flow, policy: .allSettled).value(timeout: .seconds(30)) == "2 ok, 1 failed")
            let outcomes = try await client.send(header, policy: .allSettled).value(timeout: .seconds(30))
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
            #expect(try await handle.value(timeout: .seconds(30)) == 4)
            let record = try await store.workflowRecord(for: handle.uuid)
            #expect(record?.status == .success)
        }
    }

    @Test func aGroupWithoutAStoreIsRefusedLoudly() async throws {
        let probe = Probe()
        try await TestWorker.run(try makeApp(probe), configuration: configuration(nil)) { client, broker in
            let group = Workflow.group([try Workflow.task(Flow.add, 1, 1)])
            let handle = try await client.send(group)
            let error = await #expect(throws: TaskFailedError.self) { _ = try await handle.value(timeout: .seconds(30)) }
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

    /// Replays every dead letter of `default` as `qtasks dlq replay` does:
    /// the failure headers dropped, `x-qtasks-replayed-at` set.
    func replayDeadLetters(_ broker: MemoryBroker) async throws -> [Message] {
        let letters = broker.drain("default.dlq")
        for var letter in letters {
            for key in [MessageHeaders.failedAt, MessageHeaders.originQueue, MessageHeaders.attempts, MessageHeaders.errorType, MessageHeaders.errorMessage] {
                letter.properties.headers[key] = nil
            }
            letter.properties.headers[MessageHeaders.replayedAt] = .double(Date().timeIntervalSince1970)
            try await broker.publish(letter, to: "default", mandatory: true)
        }
        return letters
    }

    @Test func replayingAFailedChainStepResumesTheChain() async throws {
        let probe = Probe()
        let store = MemoryResultStore()
        try await TestWorker.run(try makeApp(probe), configuration: configuration(store)) { client, broker in
            // add(1, 1) = 2 → fragile(2) fails → (after the replay) double(2) = 4
            let chain = try Workflow.task(Flow.add, 1, 1).then(Flow.fragile).then(Flow.double)
            let handle = try await client.send(chain)
            await #expect(throws: TaskFailedError.self) { _ = try await handle.value(timeout: .seconds(30)) }
            #expect(try await store.workflowRecord(for: handle.uuid)?.status == .error)
            let dead = try await waitFor { broker.messages(in: "default.dlq") }
            #expect(dead.first?.properties.headers[MessageHeaders.workflow] == .string(handle.uuid))
            probe.broken.withLock { $0 = false }
            #expect(try await replayDeadLetters(broker).count == 1)
            let record = try await waitFor {
                try await store.workflowRecord(for: handle.uuid).flatMap { $0.status == .success ? [$0] : nil } ?? []
            }
            #expect(record.first?.result == 4)
            #expect(probe.calls("add") == 1, "the steps before the failed one do not run again")
        }
    }

    @Test func replayingTheDeadLettersOfAFailedFastChordRunsItsCallback() async throws {
        let probe = Probe()
        let store = MemoryResultStore()
        try await TestWorker.run(try makeApp(probe), configuration: configuration(store, concurrency: 1)) { client, broker in
            let chord = try Workflow.chord(try [1, 2, 3, 4].map { try Workflow.task(Flow.fragile, $0) }, then: Flow.sum)
            let handle = try await client.send(chord)
            await #expect(throws: TaskFailedError.self) { _ = try await handle.value(timeout: .seconds(30)) }
            // fragile(2) failed; with one task at a time, the members
            // picked up after it were dead-lettered unrun. (The members are
            // published together: which ran before fragile(2) varies.)
            try await waitFor { broker.readyCount(in: "default") == 0 && broker.unackedCount == 0 ? [true] : [] }
            let ran = probe.calls("fragile")
            let dead = broker.messages(in: "default.dlq").count
            #expect(ran >= 1 && dead >= 1 && ran + dead == 5, "each member either ran before the failure or was dead-lettered unrun: ran \(ran), dead \(dead)")
            probe.broken.withLock { $0 = false }
            _ = try await replayDeadLetters(broker)
            let record = try await waitFor {
                try await store.workflowRecord(for: handle.uuid).flatMap { $0.status == .success ? [$0] : nil } ?? []
            }
            #expect(record.first?.result == 10)
            #expect(probe.calls("sum") == 1)
        }
    }

    @Test func aSecondDeliveryOfARunningStepWaitsAndThenDoesNotRunIt() async throws {
        let probe = Probe()
        let store = MemoryResultStore()
        try await TestWorker.run(try makeApp(probe), configuration: configuration(store, concurrency: 2)) { _, broker in
            // One step, published twice at once (as a producer's retry or
            // a republished follow-up would): the second copy finds the
            // first running, comes back later, and is then acknowledged
            // without running.
            var step = TaskMessage(taskName: Flow.slow.name, args: [1000])
            step.workflow = WorkflowContext(id: UUID().uuidString.lowercased(), policy: .failFast, replyTo: nil)
            for _ in 0..<2 {
                try await broker.publish(Message(body: step.jsonBytes()), to: "default", mandatory: true)
            }
            try await waitFor { broker.delayedCount == 1 ? [true] : [] }
            probe.released.withLock { $0 = true }
            try await waitFor { broker.delayedCount == 0 && broker.unackedCount == 0 && broker.readyCount(in: "default") == 0 ? [true] : [] }
            #expect(probe.peak == 1, "never two runs of the step at once")
            #expect(try await store.beginStep(step.uuid, join: nil, runner: "a", takingOver: false) == .finished(1000))
        }
    }

    // Faults a break-it run found: steps that fail before their handler
    // runs, or whose follow-ups can never be published, must end their
    // workflow, never hang it or loop.

    @Test func aStepNamingAnUnknownTaskFailsTheWorkflow() async throws {
        let probe = Probe()
        let store = MemoryResultStore()
        try await TestWorker.run(try makeApp(probe), configuration: configuration(store)) { client, broker in
            let chain: Workflow<JSONValue> = Workflow(step: .chain([
                .task(WorkflowTask(taskName: Flow.add.name, args: [1, 2])), .task(WorkflowTask(taskName: "no.such.task")),
            ]))
            let handle = try await client.send(chain)
            let error = await #expect(throws: TaskFailedError.self) { _ = try await handle.value(timeout: .seconds(30)) }
            #expect(error?.message.contains("unknown task 'no.such.task'") == true, "\(String(describing: error))")
            #expect(try await store.workflowRecord(for: handle.uuid)?.status == .error)
            #expect(try await waitFor { broker.messages(in: "default.dlq") }.count == 1)
        }
    }

    @Test func aMemberWithBadArgumentsIsSettledAsFailed() async throws {
        let probe = Probe()
        try await TestWorker.run(try makeApp(probe), configuration: configuration(MemoryResultStore())) { client, _ in
            let members: Workflow<[WorkflowMemberResult<Int>]> = Workflow(step: .group(id: "", members: [
                .task(WorkflowTask(taskName: Flow.double.name, args: [2])),
                .task(WorkflowTask(taskName: Flow.double.name, args: ["two"])),
            ], window: nil))
            let outcomes = try await client.send(members, policy: .allSettled).value(timeout: .seconds(30))
            #expect(outcomes.map(\.status) == [.success, .error])
            #expect(outcomes[1].error?.contains("TaskInputError") == true)
        }
    }

    @Test func aResultTooLargeToSendFailsTheWorkflow() async throws {
        let probe = Probe()
        let store = MemoryResultStore()
        var configuration = configuration(store)
        configuration.maxResultBytes = 64
        // Recorded results are held to the limit (as with --result-store).
        configuration.events = TaskEventRecording(sinks: [store])
        try await TestWorker.run(try makeApp(probe), configuration: configuration) { client, _ in
            let chain = try Workflow.task(Flow.collect, Array(0..<100)).then(Flow.sum)
            let error = await #expect(throws: TaskFailedError.self) { _ = try await client.send(chain).value(timeout: .seconds(30)) }
            #expect(error?.message.contains("ResultTooLargeError") == true, "\(String(describing: error))")
            #expect(probe.calls("sum") == 0)
        }
    }

    @Test func aStepQueueNoWorkerCouldDeclareEndsTheWorkflowOnce() async throws {
        let probe = Probe()
        try await TestWorker.run(try makeApp(probe), configuration: configuration(MemoryResultStore())) { client, broker in
            let bad: Workflow<JSONValue> = Workflow(step: .chain([
                .task(WorkflowTask(taskName: Flow.add.name, args: [1, 2])), .task(WorkflowTask(taskName: Flow.double.name, queue: "amq.nope")),
            ]))
            // The client refuses it before sending anything.
            await #expect(throws: QueueNameError.self) { _ = try await client.send(bad) }
            // Sent by hand, the worker ends the workflow with the error
            // instead of requeueing its first step for ever.
            let replies = try await broker.makeReplyQueue()
            var start = TaskMessage(taskName: WorkflowContext.startTaskName)
            start.workflow = WorkflowContext(id: start.uuid, policy: .failFast, replyTo: replies.name, start: bad.step.withFreshIDs())
            try await broker.publish(Message(body: start.jsonBytes()), to: "default", mandatory: true)
            var iterator = replies.messages.makeAsyncIterator()
            let reply = try JSONDecoder().decode(TaskResult.self, from: Data(try #require(try await iterator.next()).body))
            #expect(reply.status == .error && reply.traceback?.contains("amq.nope") == true, "\(reply)")
            try await waitFor { broker.readyCount(in: "default") == 0 && broker.unackedCount == 0 ? [true] : [] }
            #expect(probe.calls("add") == 1)
        }
    }

    @Test func aMemberWhoseJoinIsGoneIsDeadLetteredNotRequeuedForEver() async throws {
        let probe = Probe()
        try await TestWorker.run(try makeApp(probe), configuration: configuration(MemoryResultStore())) { _, broker in
            var step = TaskMessage(taskName: Flow.add.name, args: [1, 1])
            step.workflow = WorkflowContext(id: "w", policy: .allSettled, replyTo: nil, join: JoinMembership(id: "no-such-join", index: 3))
            try await broker.publish(Message(body: step.jsonBytes()), to: "default", mandatory: true)
            let dead = try await waitFor { broker.messages(in: "default.dlq") }
            guard case .string(let reason)? = dead.first?.properties.headers["x-qtasks-error-message"] else {
                Issue.record("no error message on the dead letter")
                return
            }
            #expect(reason.contains("no-such-join"), "\(reason)")
            try await waitFor { broker.readyCount(in: "default") == 0 && broker.unackedCount == 0 ? [true] : [] }
            #expect(probe.calls("add") == 1)
        }
    }

    /// A store whose first `finishStep` fails as a frozen Redis would.
    final class FlakyStore: WorkflowStore {
        let base = MemoryResultStore()
        let failures = Mutex(1)
        func recordWorkflow(_ record: WorkflowRecord) async throws { try await base.recordWorkflow(record) }
        func workflowRecord(for id: String) async throws -> WorkflowRecord? { try await base.workflowRecord(for: id) }
        func workflowRecords(limit: Int, offset: Int) async throws -> [WorkflowRecord] { try await base.workflowRecords(limit: limit, offset: offset) }
        func finishWorkflow(_ id: String, status: TaskStatus, result: JSONValue?, error: String?) async throws {
            try await base.finishWorkflow(id, status: status, result: result, error: error)
        }
        func openJoin(_ join: WorkflowJoin) async throws -> [Int] { try await base.openJoin(join) }
        func settleMember(_ membership: JoinMembership, outcome: WorkflowMemberResult<JSONValue>) async throws -> JoinSettlement {
            try await base.settleMember(membership, outcome: outcome)
        }
        func beginStep(_ uuid: String, join: JoinMembership?, runner: String, takingOver: Bool) async throws -> StepStart {
            try await base.beginStep(uuid, join: join, runner: runner, takingOver: takingOver)
        }
        func finishStep(_ uuid: String, returning: JSONValue) async throws {
            let fail = failures.withLock { left in
                defer { left = max(0, left - 1) }
                return left > 0
            }
            if fail { throw ResultStoreError(.unavailable, "Redis timed out (test)") }
            try await base.finishStep(uuid, returning: returning)
        }
        func releaseStep(_ uuid: String) async throws { try await base.releaseStep(uuid) }
        func joinProgress(_ id: String) async throws -> JoinProgress? { try await base.joinProgress(id) }
    }

    @Test func aStoreCallThatFailsOnceDoesNotRunTheStepAgain() async throws {
        let probe = Probe()
        var configuration = WorkerConfiguration(concurrency: 4, shutdownGracePeriod: .seconds(5))
        configuration.workflowStore = FlakyStore()
        try await TestWorker.run(try makeApp(probe), configuration: configuration) { client, _ in
            let chain = try Workflow.task(Flow.add, 1, 2).then(Flow.double)
            #expect(try await client.send(chain).value(timeout: .seconds(30)) == 6)
            #expect(probe.calls("add") == 1, "the failed store call was tried again, not the task")
        }
    }

    /// Polls `read` until it returns a non-empty array (the memory broker
    /// has no notification for dead letters).
    @discardableResult
    func waitFor<T>(_ read: () async throws -> [T]) async throws -> [T] {
        let deadline = ContinuousClock.now + .seconds(30)
        while ContinuousClock.now < deadline {
            let values = try await read()
            if !values.isEmpty { return values }
            try await Task.sleep(for: .milliseconds(10))
        }
        return try await read()
    }
}
