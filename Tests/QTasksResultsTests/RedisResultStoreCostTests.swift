import Foundation
import QTasks
import QTasksResultsRedis
import Testing

/// What a worker's batch costs the Redis store: 5,000 events (received,
/// started, succeeded of 1,667 tasks, the worker's largest batch), written
/// several times on fresh tasks, and the same tasks' ends arriving in a
/// second batch (their records read back). Prints wall times; asserts only
/// that everything was recorded (no timing assertions). Opt-in:
/// `QTASKS_REDIS_COST=1 swift test --filter RedisResultStoreCost`.
@Suite(
    "Redis result store cost",
    .enabled(if: TestRedis.enabled && ProcessInfo.processInfo.environment["QTASKS_REDIS_COST"] == "1",
             "set QTASKS_REDIS_COST=1 (and have a Redis) to measure"))
struct RedisResultStoreCostTests {
    @Test func aBatchOf5000Events() async throws {
        var configuration = ResultStoreConfiguration()
        configuration.keyPrefix = "qtasks-cost-" + UUID().uuidString.prefix(8).lowercased()
        defer { try? TestRedis.deleteKeys(prefix: configuration.keyPrefix) }
        let store = try await RedisResultStore.open(url: TestRedis.url, configuration: configuration)
        let clock = ContinuousClock()
        var whole: [Duration] = []
        var split: [Duration] = []
        for _ in 0..<6 {
            var scripts = (0..<1667).map { _ in EventScript(taskName: "add", queue: "default") }
            // One batch with whole runs: nothing to read back.
            var batch: [TaskEvent] = []
            for index in scripts.indices { batch += scripts[index].success(.int(Int64(index))) }
            whole.append(try await clock.measure { try await store.record(Array(batch.prefix(5000))) })
            // Runs split over two batches: the second reads 2,500 records.
            scripts = (0..<2500).map { _ in EventScript(taskName: "add", queue: "default") }
            var first: [TaskEvent] = []
            var second: [TaskEvent] = []
            for index in scripts.indices {
                first += [scripts[index].received(), scripts[index].next(.started)]
                second.append(scripts[index].succeeded(.int(Int64(index))))
            }
            try await store.record(first)
            split.append(try await clock.measure { try await store.record(second) })
        }
        let listed = try await store.records(matching: TaskRecordQuery(limit: 100_000))
        #expect(listed.count == 6 * (1667 + 2500))
        await store.close()
        func text(_ durations: [Duration]) -> String {
            durations.map { String(format: "%.1f", Double($0.components.attoseconds) / 1e15 + Double($0.components.seconds) * 1000) }
                .joined(separator: " ")
        }
        print("redis result store: 5,000 events of 1,667 new tasks, ms per batch: \(text(whole))")
        print("redis result store: 2,500 end events of 2,500 recorded tasks, ms per batch: \(text(split))")
    }
}
