import Foundation
import QTasks
import Testing

/// `qtasks workers`: live workers from their heartbeats in a Redis result
/// store shared by a fleet.
@Suite(.enabled(if: IntegrationEnvironment.enabled, "no RabbitMQ reachable at QTASKS_URL; deploy/test.sh starts one"),
       .enabled(if: IntegrationRedis.enabled, "no Redis at QTASKS_REDIS_URL; deploy/redis.sh start"),
       .timeLimit(.minutes(2)))
struct WorkersCLITests {
    /// The heartbeats of the workers with these pids, from `qtasks workers --json`.
    private func live(_ scope: TestScope, _ store: TestResultStore) async throws -> [Int64: [String: JSONValue]] {
        let run = try await scope.runStoreCLI(["workers", "--json"], store: store)
        #expect(run.termination == .exited(0), "\(run)")
        var byPID: [Int64: [String: JSONValue]] = [:]
        for object in jsonLines(run.stdout) {
            if let pid = object["pid"]?.intValue { byPID[pid] = object }
        }
        return byPID
    }

    /// Two workers on one queue heartbeat every second: both are listed;
    /// one is SIGKILLed (no offline heartbeat) and drops out once its last
    /// heartbeat's time-to-live (3 intervals: 3 s) ran out, while the other
    /// stays.
    @Test func twoWorkersAreListedAndAKilledOneDropsOutWithinItsHeartbeatTTL() async throws {
        let store = TestResultStore.redis()
        try await TestScope.run("workers") { scope in
            let arguments = store.arguments + ["--heartbeat-interval", "1", "--concurrency", "3"]
            let first = try await scope.startWorker(on: scope.queue, arguments: arguments)
            let second = try await scope.startWorker(on: scope.queue, arguments: arguments)
            let (firstPID, secondPID) = (Int64(first.pid), Int64(second.pid))

            var workers: [Int64: [String: JSONValue]] = [:]
            try await waitUntil("both workers in `qtasks workers`", timeout: 10) {
                workers = try await live(scope, store)
                return workers[firstPID] != nil && workers[secondPID] != nil
            }
            for pid in [firstPID, secondPID] {
                let heartbeat = try #require(workers[pid])
                #expect(heartbeat["queues"] == .array([.string(scope.queue)]), "\(heartbeat)")
                #expect(heartbeat["concurrency"] == 3 && heartbeat["in_flight"] == 0 && heartbeat["online"] == true, "\(heartbeat)")
                #expect(heartbeat["version"]?.stringValue == QTasksVersion.current, "\(heartbeat)")
            }
            let table = try await scope.runStoreCLI(["workers"], store: store)
            #expect(table.termination == .exited(0), "\(table)")
            let header = table.stdout.split(separator: "\n").first.map(String.init) ?? ""
            #expect(header.hasPrefix("WORKER") && header.contains("IN FLIGHT") && header.contains("UPTIME"), "\(table)")
            for pid in [firstPID, secondPID] {
                #expect(table.stdout.split(separator: "\n").contains { $0.contains(" \(pid) ") && $0.contains(scope.queue) }, "\(table)")
            }

            // The latest heartbeat before the kill says until when it counts.
            second.signal(SIGKILL)
            let killedAt = Date()
            _ = await second.waitForExit(timeout: 5)
            let lastSeen = try #require(try await live(scope, store)[secondPID]?["expires_at"]?.doubleValue)
            #expect(lastSeen <= killedAt.timeIntervalSince1970 + 3.5, "a TTL of 3 s from a heartbeat sent before the kill")
            try await waitUntil("the killed worker to drop out", timeout: 6) {
                try await live(scope, store)[secondPID] == nil
            }
            let droppedAfter = Date().timeIntervalSince(killedAt)
            // The TTL, plus one `qtasks workers` run of slack.
            #expect(droppedAfter <= 3 + 1.5, "dropped out \(droppedAfter) s after SIGKILL")
            #expect(Date().timeIntervalSince1970 >= lastSeen - 0.5, "not before its heartbeat expired")
            #expect(try await live(scope, store)[firstPID] != nil, "the other worker is still listed")

            // A graceful stop sends an offline heartbeat: gone at once.
            await scope.stopGracefully(first)
            #expect(try await live(scope, store)[firstPID] == nil)
        }
    }
}
