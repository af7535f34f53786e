import Foundation
import QTasks
import QTasksResultStores
import TestSupport
import Testing

/// A Redis store whose server goes away and comes back: clear errors while
/// it is gone, recovery without reopening the store.
@Suite(
    "Redis result store, own server",
    .enabled(if: PrivateRedis.binary != nil || TestRedis.required, "redis-server not installed (deploy/install-deps.sh)"))
struct RedisResultStoreRecoveryTests {
    @Test func aStoreWhoseRedisWentAwayRecoversWhenItReturns() async throws {
        try await PrivateRedis.with(password: "s3cret-" + UUID().uuidString.prefix(6)) { redis in
            var configuration = ResultStoreConfiguration()
            configuration.timeout = .seconds(2)
            let store = try await ResultStores.open(url: redis.url, configuration: configuration)
            #expect("\(store)".contains(redis.redactedURL))
            var before = EventScript()
            try await store.record(before.success(1))

            // Restarted while the store was idle: the dead connection is
            // replaced at the first call, which succeeds.
            await redis.stop()
            try await redis.start()
            #expect(try await store.record(for: before.uuid)?.result == 1)

            await redis.stop()
            var during = EventScript()
            let duringEvents = during.success(2)
            let beforeUUID = before.uuid
            let now = Date()
            let heartbeat = WorkerHeartbeat(
                workerID: "w", host: "h", pid: 1, queues: ["q"], concurrency: 1, inFlight: 0, processed: 0, failed: 0,
                retried: 0, startedAt: now, sentAt: now, expiresAt: now.addingTimeInterval(60))
            let operations: [(String, @Sendable () async throws -> Void)] = [
                ("record", { try await store.record(duringEvents) }),
                ("record(for:)", { _ = try await store.record(for: beforeUUID) }),
                ("records(matching:)", { _ = try await store.records(matching: TaskRecordQuery()) }),
                ("recordHeartbeat", { try await store.recordHeartbeat(heartbeat) }),
                ("liveWorkers", { _ = try await store.liveWorkers() }),
            ]
            for (name, operation) in operations {
                let error = await #expect(throws: ResultStoreError.self, "\(name)") { try await operation() }
                #expect(error?.code == .unavailable, "\(name): \(String(describing: error))")
                let message = error?.message ?? ""
                #expect(message.contains(redis.redactedURL), "\(name): \(message)")
                #expect(message.contains("refused") || message.contains("closed") || message.contains("reset"), "\(name): \(message)")
                #expect(!message.contains(redis.password ?? "-"), "\(name): \(message)")
            }

            // Back: the same store works again, and the batch the worker
            // retries is recorded.
            try await redis.start()
            try await store.record(duringEvents)
            #expect(try await store.record(for: during.uuid)?.result == 2)
            #expect(try await store.record(for: before.uuid)?.result == 1)
            try await store.recordHeartbeat(heartbeat)
            #expect(try await store.liveWorkers().map(\.workerID) == ["w"])
            await store.close()
        }
    }

    @Test func aWrongPasswordIsUnavailableWithoutLeakingIt() async throws {
        try await PrivateRedis.with(password: "s3cret-" + UUID().uuidString.prefix(6)) { redis in
            let error = await #expect(throws: ResultStoreError.self) {
                _ = try await ResultStores.open(url: "redis://:wrong-pass@127.0.0.1:\(redis.port)/0")
            }
            #expect(error?.code == .unavailable)
            #expect(error?.message.contains("authentication") == true, "\(String(describing: error))")
            #expect(error?.message.contains("wrong-pass") == false)
        }
    }
}
