import Foundation
import QTasks
import QTasksState
import QTasksStateStores
import Testing

/// Redis specifics against servers the tests start and stop themselves:
/// durability across a restart, connection loss and recovery, passwords.
@Suite(
    "Redis backend, own servers",
    .enabled(if: TestRedis.canSpawn, "redis-server not installed (deploy/install-deps.sh installs it)"))
struct RedisServerTests {
    @Test func writesSurviveARedisRestart() async throws {
        let redis = try SpawnedRedis()
        try await redis.start()
        let id = StateID(namespace: "RegistrationState", key: "42")
        let store = try await StateStores.open(url: redis.url)
        try await store.update(["state": "await_phone", "step": 1, "prompt": "Введите телефон"], in: id)
        _ = try await AnyState(namespace: id.namespace, key: id.key, store: store).increment("visits")

        await redis.stop()
        try await redis.start()

        // The same store: its connection died with the server, and the read
        // is retried once on a new connection.
        #expect(
            try await store.getAll(in: id) == [
                "state": "await_phone", "step": 1, "prompt": "Введите телефон", "visits": 1,
            ])
        // A new store (a restarted worker) reads the same.
        let fresh = try await StateStores.open(url: redis.url)
        #expect(try await fresh.get("prompt", in: id) == "Введите телефон")
        await fresh.close()
        await store.close()
        await redis.remove()
    }

    @Test func lostConnectionGivesAClearErrorAndRecovers() async throws {
        let redis = try SpawnedRedis(password: "s3cret-pass")
        try await redis.start()
        var configuration = StateStoreConfiguration()
        configuration.timeout = .seconds(2)
        let store = try await StateStores.open(url: redis.url, configuration: configuration)
        #expect("\(store)" == "RedisStateStore(redis://:***@127.0.0.1:\(redis.port)/0)")
        let state = AnyState(namespace: uniqueNamespace(), key: "k", store: store)
        try await state.set("before", to: "down")

        await redis.stop()
        for operation in ["read", "write", "modify"] {
            let error = await expectStateError(.unavailable) {
                switch operation {
                case "read": _ = try await state.getAll()
                case "write": try await state.set("during", to: 1)
                default: try await state.increment("n")
                }
            }
            let message = error?.message ?? ""
            #expect(message.contains("redis://:***@127.0.0.1:\(redis.port)/0"), "\(operation): \(message)")
            #expect(
                message.contains("refused") || message.contains("closed") || message.contains("reset"), "\(message)")
            #expect(!message.contains("s3cret"), "\(message)")
        }

        try await redis.start()
        // Recovered without reopening the store.
        #expect(try await state.getAll() == ["before": "down"])
        try await state.set("after", to: "up")
        #expect(try await state.increment("n") == 1)
        #expect(try await state.getAll() == ["before": "down", "after": "up", "n": 1])
        await store.close()
        await redis.remove()
    }

    @Test func wrongPasswordIsUnavailableWithoutLeakingIt() async throws {
        let redis = try SpawnedRedis(password: "right-pass")
        try await redis.start()
        let error = await expectStateError(.unavailable) {
            _ = try await StateStores.open(url: "redis://:wrong-pass@127.0.0.1:\(redis.port)/0")
        }
        #expect(error?.message.contains("authentication") == true, "\(String(describing: error))")
        #expect(error?.message.contains("wrong-pass") == false)
        let anonymous = await expectStateError(.unavailable) {
            let store = try await StateStores.open(url: "redis://127.0.0.1:\(redis.port)/0")
            _ = try await store.getAll(in: StateID(namespace: "N"))
        }
        #expect(anonymous?.message.contains("NOAUTH") == true, "\(String(describing: anonymous))")
        await redis.remove()
    }

    @Test func databaseNumberSelectsTheDatabase() async throws {
        let redis = try SpawnedRedis()
        try await redis.start()
        let zero = try await StateStores.open(url: "redis://127.0.0.1:\(redis.port)/0")
        let three = try await StateStores.open(url: "redis://127.0.0.1:\(redis.port)/3")
        let id = StateID(namespace: "Db")
        try await three.set("a", to: 3, in: id)
        #expect(try await zero.getAll(in: id) == [:])
        #expect(try await three.getAll(in: id) == ["a": 3])
        await zero.close()
        await three.close()
        await redis.remove()
    }

    /// The layout: one hash per state, fields as unescaped JSON text, TTL
    /// as the key's expiry; a key of another type is reported, not misread.
    @Test func layoutIsOneHashPerStateWithJSONFields() async throws {
        let redis = try SpawnedRedis()
        try await redis.start()
        let store = try await StateStores.open(url: redis.url)
        try await store.update(
            ["prompt": "Введите телефон", "step": 1], in: StateID(namespace: "Reg", key: "42"), ttl: .seconds(60))
        #expect(try redisCLI(redis, "HGET", "qtasks:state:Reg:42", "prompt") == #""Введите телефон""#)
        #expect(try redisCLI(redis, "HGET", "qtasks:state:Reg:42", "step") == "1")
        let ttl = Int(try redisCLI(redis, "PTTL", "qtasks:state:Reg:42")) ?? 0
        #expect(ttl > 50_000 && ttl <= 60_000)

        _ = try redisCLI(redis, "SET", "qtasks:state:Reg:string", "plain")
        await expectStateError(.corrupted) { _ = try await store.getAll(in: StateID(namespace: "Reg", key: "string")) }
        _ = try redisCLI(redis, "HSET", "qtasks:state:Reg:bad", "f", "{not json")
        await expectStateError(.corrupted) { _ = try await store.get("f", in: StateID(namespace: "Reg", key: "bad")) }
        await store.close()
        await redis.remove()
    }

    /// A write by another client between modify's read and its EXEC aborts
    /// the transaction; modify reads again and runs its closure again, so
    /// neither write is lost. When attempts run out: `.conflict`.
    @Test func modifyRetriesWhenAnotherClientWritesInBetween() async throws {
        let redis = try SpawnedRedis()
        try await redis.start()
        let store = try await StateStores.open(url: redis.url)
        let state = AnyState(namespace: "Race", key: "1", store: store)
        try await state.set("n", to: 0)
        let runs = Locked(0)
        let result = try await state.modify { fields -> Int64 in
            let run = runs.withLock { count in
                count += 1
                return count
            }
            if run == 1 {  // another worker sneaks in a write
                _ = try? redisCLISync(redis, "HSET", "qtasks:state:Race:1", "other", "true")
            }
            let next = (fields["n"]?.intValue ?? 0) + 1
            fields["n"] = .int(next)
            return next
        }
        #expect(result == 1)
        #expect(runs.withLock { $0 } == 2)
        #expect(try await state.getAll() == ["n": 1, "other": true])

        var configuration = StateStoreConfiguration()
        configuration.maxModifyAttempts = 3
        let impatient = try await StateStores.open(url: redis.url, configuration: configuration)
        let attempts = Locked(0)
        let error = await expectStateError(.conflict) {
            try await AnyState(namespace: "Race", key: "1", store: impatient).modify { fields in
                let attempt = attempts.withLock { count in
                    count += 1
                    return count
                }
                _ = try? redisCLISync(redis, "HSET", "qtasks:state:Race:1", "other", "\(attempt)")
                fields["n"] = 100
            }
        }
        #expect(attempts.withLock { $0 } == 3)
        #expect(error?.message.contains("3 attempts") == true)
        #expect(try await state.get("n") == 1)
        await impatient.close()
        await store.close()
        await redis.remove()
    }

    /// `redis-cli` against the spawned server, for a raw look at the data.
    private func redisCLI(_ redis: SpawnedRedis, _ arguments: String...) throws -> String {
        try redisCLISync(redis, arguments)
    }
}

/// Runs `redis-cli --raw` against `redis` and returns its output (blocking:
/// for short commands only).
func redisCLISync(_ redis: SpawnedRedis, _ arguments: String...) throws -> String {
    try redisCLISync(redis, arguments)
}

func redisCLISync(_ redis: SpawnedRedis, _ arguments: [String]) throws -> String {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = ["redis-cli", "--raw", "-p", String(redis.port)] + arguments
    let pipe = Pipe()
    process.standardOutput = pipe
    try process.run()
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
}
