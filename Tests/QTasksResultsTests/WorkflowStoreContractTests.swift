import Foundation
import QTasks
import Testing

/// The workflow-store contract (docs/workflows.md, "Guarantees"), run
/// against every backend: memory, a real SQLite file, a real Redis.
@Suite("Workflow store contract")
struct WorkflowStoreContractTests {
    func join(_ count: Int, window: Int? = nil, policy: WorkflowPolicy = .failFast, id: String = UUID().uuidString) -> WorkflowJoin {
        WorkflowJoin(
            id: id, workflowID: "wf-" + id, policy: policy, replyTo: "reply", 
            members: (0..<count).map { .task(WorkflowTask(taskName: "member", args: [.int(Int64($0))], uuid: "m\($0)")) },
            window: window, input: 7, queue: "default", next: [.task(WorkflowTask(taskName: "callback", uuid: "cb"))], parent: nil)
    }

    static func ok(_ value: Int) -> WorkflowMemberResult<JSONValue> { WorkflowMemberResult(status: .success, returning: .int(Int64(value))) }
    static let failed = WorkflowMemberResult<JSONValue>(status: .error, error: "Boom: no")

    func withWorkflowStore(_ backend: ResultBackend, _ body: (any WorkflowStore) async throws -> Void) async throws {
        try await withResultStore(backend) { store in
            try await body(try #require(store as? any WorkflowStore))
        }
    }

    @Test(arguments: ResultBackend.available)
    func openingTwiceStartsTheSameMembers(_ backend: ResultBackend) async throws {
        try await withWorkflowStore(backend) { store in
            let spec = join(10, window: 3)
            #expect(try await store.openJoin(spec) == [0, 1, 2])
            #expect(try await store.openJoin(spec) == [0, 1, 2])
            let progress = try #require(try await store.joinProgress(spec.id))
            #expect(progress.total == 10 && progress.started == 3 && progress.settled == 0)
        }
    }

    @Test(arguments: ResultBackend.available)
    func eachEndStartsTheNextMemberAndTheLastCompletesOnce(_ backend: ResultBackend) async throws {
        try await withWorkflowStore(backend) { store in
            let spec = join(4, window: 2)
            _ = try await store.openJoin(spec)
            let first = try await store.settleMember(JoinMembership(id: spec.id, index: 1), outcome: Self.ok(10))
            #expect(first.start.map(\.index) == [2])
            #expect(first.start.first?.step == spec.members[2])
            #expect(first.join.next == spec.next && first.join.input == 7 && first.join.replyTo == "reply")
            #expect(first.completion == nil && !first.isRepeat)
            // The same end again (a redelivery): the same answer, counted once.
            let again = try await store.settleMember(JoinMembership(id: spec.id, index: 1), outcome: Self.ok(10))
            #expect(again.isRepeat && again.start.map(\.index) == [2])
            #expect(try await store.joinProgress(spec.id)?.settled == 1)
            #expect(try await store.settleMember(JoinMembership(id: spec.id, index: 0), outcome: Self.ok(0)).start.map(\.index) == [3])
            #expect(try await store.settleMember(JoinMembership(id: spec.id, index: 2), outcome: Self.ok(20)).completion == nil)
            let last = try await store.settleMember(JoinMembership(id: spec.id, index: 3), outcome: Self.ok(30))
            #expect(last.completion?.map(\.returning) == [0, 10, 20, 30])
            // A repeat of the completing end completes again (its follow-ups are redone), no other member does.
            #expect(try await store.settleMember(JoinMembership(id: spec.id, index: 3), outcome: Self.ok(30)).completion?.count == 4)
            #expect(try await store.settleMember(JoinMembership(id: spec.id, index: 0), outcome: Self.ok(0)).completion == nil)
            #expect(try await store.joinProgress(spec.id)?.completed == true)
        }
    }

    @Test(arguments: ResultBackend.available)
    func failFastHaltsOnceAndAReplayedSuccessResumes(_ backend: ResultBackend) async throws {
        try await withWorkflowStore(backend) { store in
            let spec = join(3, window: 2)
            _ = try await store.openJoin(spec)
            let failure = try await store.settleMember(JoinMembership(id: spec.id, index: 0), outcome: Self.failed)
            #expect(failure.failedWorkflow && failure.start.isEmpty)
            #expect(try await store.beginStep("m1", join: JoinMembership(id: spec.id, index: 1), runner: "a", takingOver: false) == .halted)
            let second = try await store.settleMember(JoinMembership(id: spec.id, index: 1), outcome: Self.ok(1))
            #expect(!second.failedWorkflow && second.start.isEmpty && second.completion == nil)
            // The failed member replayed, and now it succeeds: member 2 starts.
            let replayed = try await store.settleMember(JoinMembership(id: spec.id, index: 0), outcome: Self.ok(0))
            #expect(!replayed.isRepeat && replayed.start.map(\.index) == [2])
            let last = try await store.settleMember(JoinMembership(id: spec.id, index: 2), outcome: Self.ok(2))
            #expect(last.completion?.map(\.returning) == [0, 1, 2])
        }
    }

    @Test(arguments: ResultBackend.available)
    func allSettledCompletesWithFailures(_ backend: ResultBackend) async throws {
        try await withWorkflowStore(backend) { store in
            let spec = join(2, policy: .allSettled)
            _ = try await store.openJoin(spec)
            #expect(try await store.settleMember(JoinMembership(id: spec.id, index: 0), outcome: Self.failed).failedWorkflow == false)
            let last = try await store.settleMember(JoinMembership(id: spec.id, index: 1), outcome: Self.ok(1))
            #expect(last.completion?.map(\.status) == [.error, .success])
            #expect(last.completion?.first?.error == "Boom: no")
        }
    }

    @Test(arguments: ResultBackend.available)
    func aStepRunsOnceUnlessTakenOver(_ backend: ResultBackend) async throws {
        try await withWorkflowStore(backend) { store in
            let uuid = UUID().uuidString
            #expect(try await store.beginStep(uuid, join: nil, runner: "a", takingOver: false) == .run)
            #expect(try await store.beginStep(uuid, join: nil, runner: "a", takingOver: false) == .running)
            // A copy of the same runner (its session) waits even when it was
            // redelivered; another runner's redelivery takes over.
            #expect(try await store.beginStep(uuid, join: nil, runner: "a", takingOver: true) == .running)
            #expect(try await store.beginStep(uuid, join: nil, runner: "b", takingOver: true) == .run)
            #expect(try await store.beginStep(uuid, join: nil, runner: "b", takingOver: true) == .running)
            // A failed run lets the next delivery run (no wait for ever).
            try await store.releaseStep(uuid)
            #expect(try await store.beginStep(uuid, join: nil, runner: "a", takingOver: false) == .run)
            try await store.finishStep(uuid, returning: ["sum": 5])
            #expect(try await store.beginStep(uuid, join: nil, runner: "a", takingOver: true) == .finished(["sum": 5]))
            // Releasing never forgets a success.
            try await store.releaseStep(uuid)
            #expect(try await store.beginStep(uuid, join: nil, runner: "a", takingOver: false) == .finished(["sum": 5]))
        }
    }

    @Test(arguments: ResultBackend.available)
    func aWorkflowRecordEndsOnceAndAResumedSuccessWins(_ backend: ResultBackend) async throws {
        try await withWorkflowStore(backend) { store in
            let id = UUID().uuidString
            let root = WorkflowStep.chain([.task(WorkflowTask(taskName: "a")), .task(WorkflowTask(taskName: "b"))])
            try await store.recordWorkflow(WorkflowRecord(id: id, policy: .allSettled, root: root))
            try await store.recordWorkflow(WorkflowRecord(id: id, policy: .failFast, root: .task(WorkflowTask(taskName: "x"))))
            var record = try #require(try await store.workflowRecord(for: id))
            #expect(record.root == root && record.policy == .allSettled && record.status == .process)
            try await store.finishWorkflow(id, status: .error, result: nil, error: "b failed")
            try await store.finishWorkflow(id, status: .error, result: nil, error: "later")
            #expect(try await store.workflowRecord(for: id)?.error == "b failed")
            try await store.finishWorkflow(id, status: .success, result: 9, error: nil)
            try await store.finishWorkflow(id, status: .error, result: nil, error: "after")
            record = try #require(try await store.workflowRecord(for: id))
            #expect(record.status == .success && record.result == 9)
            #expect(try await store.workflowRecord(for: "none") == nil)
        }
    }

    @Test(arguments: ResultBackend.available)
    func concurrentEndsWithDuplicatesCompleteExactlyOnce(_ backend: ResultBackend) async throws {
        try await withWorkflowStore(backend) { store in
            let spec = join(200)
            _ = try await store.openJoin(spec)
            // Every member ends twice, all at once: one completion.
            let completions = try await withThrowingTaskGroup(of: Int.self) { group in
                for index in 0..<400 {
                    group.addTask {
                        let settlement = try await store.settleMember(JoinMembership(id: spec.id, index: index % 200), outcome: Self.ok(index % 200))
                        return settlement.completion != nil && !settlement.isRepeat ? 1 : 0
                    }
                }
                return try await group.reduce(0, +)
            }
            #expect(completions == 1)
            let progress = try #require(try await store.joinProgress(spec.id))
            #expect(progress.settled == 200 && progress.completed)
            #expect(progress.members.map { $0?.returning } == (0..<200).map { .int(Int64($0)) })
        }
    }

    @Test(arguments: ResultBackend.available)
    func anUnknownJoinIsAnError(_ backend: ResultBackend) async throws {
        try await withWorkflowStore(backend) { store in
            await #expect(throws: ResultStoreError.self) {
                _ = try await store.settleMember(JoinMembership(id: "missing", index: 0), outcome: Self.ok(1))
            }
            let progress = try await store.joinProgress("missing")
            #expect(progress == nil)
        }
    }
}
