import Foundation
import QTasks
import QTasksState
import QTasksStateStores
import TestSupport
import Testing

/// Issue #17 item 6: the Redis backend's timeout holds against a frozen
/// server (SIGSTOP: the kernel still accepts connections and writes, Redis
/// answers nothing). Every call fails with `unavailable` within the
/// configured timeout plus a little, also a call queued behind others on
/// the store's one connection, and the store works again after SIGCONT.
///
/// The timeout is 5 s, not shorter: the bounds below leave a loaded machine
/// (load average 15 on 2 cores) seconds to wake the timed-out calls, and
/// still fail the faults they are there for (a second full timeout after
/// a reconnect: 2 × the timeout; calls queued behind each other: up to 8 ×).
@Suite(
    "Redis backend, frozen server",
    .enabled(if: PrivateRedis.binary != nil || TestRedis.required, "redis-server not installed (deploy/install-deps.sh)"),
    .serialized)
struct RedisFreezeTests {
    static let timeout: Duration = .seconds(5)

    @Test(.timeLimit(.minutes(2)))
    func aFrozenServerFailsEachCallWithinTheTimeout() async throws {
        try await PrivateRedis.with { redis in
            var configuration = StateStoreConfiguration()
            configuration.timeout = Self.timeout
            let store = try await StateStores.open(url: redis.url, configuration: configuration)
            let id = StateID(namespace: "MyState", key: "frozen")
            // The connection is up (a timeout is retried: it is the store's, and
            // one round trip to a new server may take longer when starved).
            try await retrying(while: isRedisTimeout) { try await store.update(["state": "await_phone"], in: id) }

            redis.freeze()
            defer { redis.thaw() }
            // One call: the read times out; no second full timeout on a
            // reconnect (the kernel accepts it, then nothing answers).
            let single = await Self.timed { _ = try await store.getAll(in: id) }
            // Eight at once on the one connection: those queued behind the
            // first fail at their own deadline, not a timeout each in turn.
            let concurrent = await withTaskGroup(of: (Duration, (any Error)?).self) { group in
                for index in 0..<8 {
                    group.addTask {
                        await Self.timed {
                            if index % 2 == 0 {
                                _ = try await store.get("state", in: id)
                            } else {
                                try await store.update(["step": .int(Int64(index))], in: id)
                            }
                        }
                    }
                }
                var all: [(Duration, (any Error)?)] = []
                for await outcome in group { all.append(outcome) }
                return all
            }
            redis.thaw()
            let slowest = concurrent.map(\.0).max() ?? .zero
            print(
                "redis-freeze state store: timeout \(Self.seconds(Self.timeout)) s, one call failed after \(Self.seconds(single.0)) s, "
                    + "8 concurrent calls failed after at most \(Self.seconds(slowest)) s")
            #expect((single.1 as? StateError)?.code == .unavailable, "\(String(describing: single.1))")
            // Under a second full timeout (a reconnect with a fresh one).
            #expect(single.0 < Self.timeout * 2, "one call took \(single.0)")
            for (elapsed, error) in concurrent {
                #expect((error as? StateError)?.code == .unavailable, "\(String(describing: error))")
                #expect(elapsed <= Self.timeout * 2, "a queued call took \(elapsed)")
            }
            #expect("\(single.1.map { "\($0)" } ?? "")".contains("timed out after 5 s"), "\(String(describing: single.1))")

            // Thawed: the same store works again by itself (a timeout is retried, for
            // the time a starved Redis takes to answer after SIGCONT).
            #expect(try await retrying(while: isRedisTimeout) { try await store.get("state", in: id) } == "await_phone")
            await store.close()
        }
    }

    static func timed(_ body: @Sendable () async throws -> Void) async -> (Duration, (any Error)?) {
        let start = ContinuousClock.now
        do {
            try await body()
            return (ContinuousClock.now - start, nil)
        } catch {
            return (ContinuousClock.now - start, error)
        }
    }

    static func seconds(_ duration: Duration) -> String {
        String(format: "%.2f", Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18)
    }
}
