import Foundation
import QTasks
import QTasksRabbitMQ
import Synchronization
import Testing

/// Several worker processes on one queue: RabbitMQ shares the deliveries
/// out (each worker holds at most its prefetch), nothing coordinates them.
@Suite(.enabled(if: IntegrationEnvironment.enabled, "no RabbitMQ reachable at QTASKS_URL; deploy/test.sh starts one"),
       .timeLimit(.minutes(3)))
struct FleetTests {
    static let tasks = 3000

    /// Sends `count` `work(ms)` tasks from 8 concurrent senders.
    func send(_ count: Int, ms: Int, to queue: String, through client: TaskClient) async throws -> [TaskHandle<JSONValue>] {
        try await withThrowingTaskGroup(of: [TaskHandle<JSONValue>].self) { group in
            let senders = 8
            for sender in 0..<senders {
                group.addTask {
                    var handles: [TaskHandle<JSONValue>] = []
                    for _ in stride(from: sender, to: count, by: senders) {
                        handles.append(try await client.send("work", args: [.int(Int64(ms))], queue: queue))
                    }
                    return handles
                }
            }
            var all: [TaskHandle<JSONValue>] = []
            for try await handles in group { all += handles }
            return all
        }
    }

    /// Phase 1: three workers drain 3,000 tasks; each runs a fair share
    /// (within 20 % of a third) and every task runs exactly once (counted
    /// in the workers' own logs, not only in the results). Phase 2: 3,000
    /// more, and one worker is stopped (SIGTERM) a third of the way: every
    /// result still arrives. (SIGKILL mid-run: FaultInjectionTests.)
    @Test func threeWorkersShareTheLoadFairlyAndAStoppedOneLosesNothing() async throws {
        try await TestScope.run("fleet") { scope in
            var workers: [ChildProcess] = []
            for _ in 0..<3 {
                workers.append(try await scope.startWorker(on: scope.queue, concurrency: 4, arguments: ["--prefetch", "8"]))
            }
            let broker = try RabbitMQBroker(url: IntegrationEnvironment.url)
            let client = TaskClient(broker: broker)

            // Phase 1.
            let start = ContinuousClock.now
            let handles = try await send(Self.tasks, ms: 5, to: scope.queue, through: client)
            var byPID: [Int64: Int] = [:]
            for handle in handles {
                let result = try await handle.result(timeout: .seconds(60))
                #expect(result.status == .success)
                if case .int(let pid)? = result.returning?["pid"] { byPID[pid, default: 0] += 1 }
            }
            let elapsed = ContinuousClock.now - start
            // A worker logs a task's outcome after settling it, so the last
            // result can reach us a moment before its log line is written.
            try? await waitUntil("every phase 1 log line", timeout: 30) {
                workers.map { succeededUUIDs(in: $0).count }.reduce(0, +) >= Self.tasks
            }
            let logged = workers.map(succeededUUIDs(in:))
            let ran = logged.flatMap { $0 }
            let third = Double(Self.tasks) / 3
            let shares = workers.map { byPID[Int64($0.pid), default: 0] }
            print("fleet: 3 workers, \(Self.tasks) tasks in \(elapsed): results per worker \(shares), log lines per worker \(logged.map(\.count)), \(Set(ran).count) distinct uuids run")
            #expect(shares.reduce(0, +) == Self.tasks)
            for share in shares {
                #expect(abs(Double(share) - third) <= 0.2 * third, "unfair share: \(shares)")
            }
            #expect(ran.count == Self.tasks, "each task runs once: \(ran.count) runs logged")
            let missing = Set(handles.map(\.uuid)).symmetricDifference(Set(ran))
            #expect(missing.isEmpty, "\(missing.count) uuids sent but not run, or run but not sent: \(missing.prefix(5))")

            // Phase 2: one worker stops a third of the way.
            let second = try await send(Self.tasks, ms: 20, to: scope.queue, through: client)
            // Stop worker 0 once a third of phase 2 has run (counted in the
            // workers' logs: phase 1 wrote 3,000 lines).
            try await waitUntil("a third of phase 2 to run", timeout: 60) {
                workers.map { succeededUUIDs(in: $0).count }.reduce(0, +) >= Self.tasks + Self.tasks / 3
            }
            workers[0].signal(SIGTERM)
            var received: Set<String> = []
            for handle in second {
                let result = try await handle.result(timeout: .seconds(60))
                #expect(result.status == .success)
                received.insert(result.uuid)
            }
            let ended = await workers[0].waitForExit(timeout: 30)
            #expect(ended == .exited(0), "the stopped worker:\n\(workers[0].stderrTail())")
            let secondUUIDs = Set(second.map(\.uuid))
            let runs = workers.map(succeededUUIDs(in:)).flatMap { $0 }.filter { secondUUIDs.contains($0) }
            print("fleet: phase 2, worker \(workers[0].pid) stopped a third of the way: \(received.count) of \(Self.tasks) results arrived; runs per worker \(workers.map { succeededUUIDs(in: $0).filter(secondUUIDs.contains).count }), \(runs.count - Set(runs).count) ran twice")
            #expect(received == secondUUIDs, "lost: \(secondUUIDs.subtracting(received).count)")
            await client.close()
            await broker.close()
        }
    }
}
