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
            try await waitUntil("both workers in `qtasks workers`", timeout: 60) {
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

            // Each listing is judged by when it ran, not by the test's pace
            // (a `qtasks workers` run can take seconds on a loaded machine;
            // bounds on the time from the kill to a listing failed there):
            // one that ended before the expiry of a heartbeat already seen
            // lists the worker; one that began after the last heartbeat's
            // expiry (sent before the kill: at most the kill + 3 s TTL, and
            // half a second of rounding) does not.
            var seenExpiry = 0.0
            try await waitUntil("the second worker listed before the kill", timeout: 60) {
                seenExpiry = try await live(scope, store)[secondPID]?["expires_at"]?.doubleValue ?? 0
                return seenExpiry > 0
            }
            second.signal(SIGKILL)
            let killedAt = Date().timeIntervalSince1970
            _ = await second.waitForExit(timeout: 30)
            let latestExpiry = killedAt + 3.5
            struct Listing { var began, ended: Double, expiry: Double? }
            var listings: [Listing] = []
            try await waitUntil("the killed worker to drop out", timeout: 60) {
                let began = Date().timeIntervalSince1970
                let expiry = try await live(scope, store)[secondPID].map { $0["expires_at"]?.doubleValue ?? .nan }
                listings.append(Listing(began: began, ended: Date().timeIntervalSince1970, expiry: expiry))
                return expiry == nil && began > latestExpiry
            }
            for listing in listings {
                if let expiry = listing.expiry {
                    #expect(expiry <= latestExpiry, "a TTL of 3 s from a heartbeat sent before the kill: \(listing)")
                    #expect(listing.began <= expiry + 0.5, "listed after its heartbeat expired: \(listing)")
                } else {
                    #expect(listing.ended >= seenExpiry - 0.5, "dropped out before its heartbeat expired: \(listing)")
                }
            }
            // The other worker is still listed (polled: one of its heartbeats
            // may come late on a loaded machine and let it flicker out).
            try await waitUntil("the other worker still listed", timeout: 60) {
                try await live(scope, store)[firstPID] != nil
            }

            // A graceful stop sends an offline heartbeat: gone at once.
            await scope.stopGracefully(first)
            #expect(try await live(scope, store)[firstPID] == nil)
        }
    }
}
