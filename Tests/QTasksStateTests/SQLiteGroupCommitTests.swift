import Foundation
import GRDB
import QTasks
import QTasksState
@testable import QTasksStateSQLite
import Synchronization
import Testing

/// Group commit in the SQLite backend: the writes waiting while a
/// transaction runs share the next one, and the contract still holds per
/// write. Each test makes the batches it needs deterministic by holding
/// SQLite's write lock from another connection (as another process would)
/// while it stages writes, watching the writer's statistics (no timing).
@Suite("SQLite group commit")
struct SQLiteGroupCommitTests {
    /// Two stores on one file (two processes' worth of connections), 150
    /// tasks each incrementing one counter and setting a field of their own
    /// state: every increment counts, and the writes went in batches.
    @Test func concurrentWritersOfOneRowFromTwoStoresLoseNoUpdate() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let path = "\(directory.path)/state.db"
        let stores = [try await Self.open(path), try await Self.open(path)]
        let counter = StateID(namespace: "Batch", key: "counter")
        let perStore = 150

        let lock = try WriteLockHolder(path: path)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for (index, store) in stores.enumerated() {
                for task in 0..<perStore {
                    group.addTask {
                        try await store.modify(counter) { fields in
                            fields["n"] = .int((fields["n"]?.intValue ?? 0) + 1)
                            fields["last-\(index)"] = .int(Int64(task))
                        }
                        try await store.update(["store": .int(Int64(index))], in: StateID(namespace: "Own", key: "\(index)-\(task)"))
                    }
                }
            }
            // Every store's first writes are staged while the lock is held:
            // the first transaction waits for the lock with what it took,
            // the rest wait for it.
            for store in stores {
                try await waitUntil("150 writes staged") {
                    let statistics = store.writer.statistics
                    return statistics.pending + statistics.inFlight == perStore
                }
            }
            try lock.release()
            try await group.waitForAll()
        }

        let reader = stores[0]
        let document = try await reader.getAll(in: counter)
        #expect(document["n"] == .int(Int64(2 * perStore)))
        for index in 0..<2 {
            for task in [0, perStore / 2, perStore - 1] {
                #expect(try await reader.get("store", in: StateID(namespace: "Own", key: "\(index)-\(task)")) == .int(Int64(index)))
            }
        }
        for store in stores {
            let statistics = store.writer.statistics
            #expect(statistics.writes == 2 * perStore)
            #expect(statistics.failedTransactions == 0)
            // The 150 modifies staged under the lock went in two
            // transactions (the one that waited for the lock, then all the
            // rest), so one of them held at least half.
            #expect(statistics.largestBatch >= perStore / 2, "\(statistics)")
            await store.close()
        }
    }

    /// In one batch: increments, a `modify` whose closure throws, an update
    /// with a non-finite number. The two failing writes fail alone, with
    /// their own errors; the others commit in the same transaction.
    @Test func aFailingWriteFailsAloneAndTheRestOfItsBatchCommits() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let path = "\(directory.path)/state.db"
        let store = try await Self.open(path)
        let counter = StateID(namespace: "Batch", key: "counter")
        struct Refused: Error, Equatable {}

        let lock = try WriteLockHolder(path: path)
        // A first write, alone in the transaction that waits for the lock:
        // everything staged after it goes into the next one, together.
        let first = Task { try await store.set("first", to: true, in: StateID(namespace: "Batch", key: "first")) }
        try await waitUntil("the first write in its transaction") { store.writer.statistics.inFlight == 1 }
        let increments = 10
        let outcomes = Task {
            try await withThrowingTaskGroup(of: String.self) { group in
                for _ in 0..<increments {
                    group.addTask {
                        _ = try await store.modify(counter) { fields in
                            fields["n"] = .int((fields["n"]?.intValue ?? 0) + 1)
                        }
                        return "ok"
                    }
                }
                group.addTask {
                    do {
                        try await store.modify(counter) { (fields: inout [String: JSONValue]) throws -> Void in
                            fields["n"] = .int(-1000)
                            throw Refused()
                        }
                        return "throwing modify: no error"
                    } catch is Refused {
                        return "refused"
                    }
                }
                group.addTask {
                    do {
                        try await store.update(["x": .double(.nan)], in: counter)
                        return "non-finite update: no error"
                    } catch let error as StateError where error.code == .invalidArgument {
                        return "invalid"
                    }
                }
                var outcomes: [String] = []
                for try await outcome in group { outcomes.append(outcome) }
                return outcomes.sorted()
            }
        }
        try await waitUntil("12 writes staged behind the first") { store.writer.statistics.pending == increments + 2 }
        try lock.release()
        try await first.value
        let sorted = try await outcomes.value
        #expect(sorted == ["invalid"] + Array(repeating: "ok", count: increments) + ["refused"])

        #expect(try await store.getAll(in: counter) == ["n": .int(Int64(increments))])
        let statistics = store.writer.statistics
        #expect(statistics.transactions == 2, "\(statistics)")
        #expect(statistics.largestBatch == increments + 2, "\(statistics)")
        #expect(statistics.failedTransactions == 0)
        await store.close()
    }

    /// The lock stays taken past the busy timeout: the transaction fails,
    /// and every write of its batch fails with `unavailable`; what was
    /// committed before is intact and nothing of the failed writes is
    /// written; the next write after the lock is free succeeds.
    @Test func aBusyTimeoutFailsEveryWriteOfTheBatchAndLosesNothingCommitted() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let path = "\(directory.path)/state.db"
        // The busy handler waits until the test says "give up": the busy
        // timeout expiring, without a clock.
        let giveUp = Atomic<Bool>(false)
        let store = try await SQLiteStateStore.open(
            path: path, synchronous: .normal, configuration: StateStoreConfiguration(),
            busyMode: .callback { _ in
                if giveUp.load(ordering: .relaxed) { return false }
                usleep(1_000)
                return true
            })
        let counter = StateID(namespace: "Busy", key: "counter")
        try await store.update(["n": 5, "kept": "yes"], in: counter)

        let lock = try WriteLockHolder(path: path)
        let first = Task { try await store.modify(counter) { fields in fields["n"] = 6 } }
        try await waitUntil("the first write in its transaction") { store.writer.statistics.inFlight == 1 }
        let writes = 20
        let failures = Task {
            await withTaskGroup(of: String.self) { group in
                for index in 0..<writes {
                    group.addTask {
                        do {
                            if index.isMultiple(of: 2) {
                                try await store.modify(counter) { fields in
                                    fields["n"] = .int((fields["n"]?.intValue ?? 0) + 1)
                                }
                            } else {
                                try await store.update(["a": 1], in: StateID(namespace: "Busy", key: "\(index)"))
                            }
                            return "no error"
                        } catch let error as StateError {
                            return "\(error.code)"
                        } catch {
                            return "\(error)"
                        }
                    }
                }
                var codes: [String] = []
                for await code in group { codes.append(code) }
                return codes
            }
        }
        try await waitUntil("20 writes staged behind the first") { store.writer.statistics.pending == writes }
        giveUp.store(true, ordering: .relaxed)
        let firstError = await expectStateError(.unavailable) { try await first.value }
        #expect(firstError?.message.contains("locked") == true, "\(String(describing: firstError))")
        let codes = await failures.value
        #expect(codes == Array(repeating: "unavailable", count: writes))
        let statistics = store.writer.statistics
        #expect(statistics.failedTransactions == 2, "\(statistics)")
        #expect(statistics.failedWrites == writes + 1, "\(statistics)")
        #expect(statistics.largestBatch == writes, "\(statistics)")
        try lock.release()

        #expect(try await store.getAll(in: counter) == ["n": 5, "kept": "yes"])
        #expect(try await store.keys(in: "Busy", limit: 100) == ["counter"])
        giveUp.store(false, ordering: .relaxed)
        try await store.set("n", to: 7, in: counter)
        #expect(try await store.getAll(in: counter) == ["n": 7, "kept": "yes"])
        await store.close()
    }

    /// A caller cancelled while its write waits is not written and gets a
    /// `CancellationError`; one cancelled after its write was taken into a
    /// transaction gets the committed outcome.
    @Test func cancellationBeforeTheTransactionDropsTheWriteAfterItKeepsIt() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let path = "\(directory.path)/state.db"
        let store = try await Self.open(path)
        let taken = StateID(namespace: "Cancel", key: "taken")
        let waiting = StateID(namespace: "Cancel", key: "waiting")

        let lock = try WriteLockHolder(path: path)
        let first = Task { try await store.modify(taken) { fields in fields["v"] = 1 } }
        try await waitUntil("the first write in its transaction") { store.writer.statistics.inFlight == 1 }
        let second = Task { try await store.set("v", to: 2, in: waiting) }
        try await waitUntil("the second write staged") { store.writer.statistics.pending == 1 }
        first.cancel()
        second.cancel()
        await #expect(throws: CancellationError.self) { try await second.value }
        #expect(store.writer.statistics.pending == 0)
        try lock.release()
        try await first.value

        #expect(try await store.getAll(in: taken) == ["v": 1])
        #expect(try await store.getAll(in: waiting) == [:])
        let statistics = store.writer.statistics
        #expect(statistics.transactions == 1 && statistics.writes == 1, "\(statistics)")
        await store.close()
    }

    // MARK: - Helpers

    /// A store whose writers wait for the lock as long as a test needs
    /// (the default busy timeout is 5 s; a loaded CI machine may stage
    /// writes slower than that).
    private static func open(_ path: String) async throws -> SQLiteStateStore {
        var configuration = StateStoreConfiguration()
        configuration.timeout = .seconds(120)
        return try await SQLiteStateStore.open(path: path, configuration: configuration)
    }
}

/// Holds SQLite's write lock on a file from a connection of its own, as
/// another process's transaction would, until `release()`.
private final class WriteLockHolder {
    private let queue: DatabaseQueue

    init(path: String) throws {
        var configuration = Configuration()
        configuration.allowsUnsafeTransactions = true
        queue = try DatabaseQueue(path: path, configuration: configuration)
        try queue.writeWithoutTransaction { db in try db.execute(sql: "BEGIN IMMEDIATE") }
    }

    func release() throws {
        try queue.writeWithoutTransaction { db in try db.execute(sql: "ROLLBACK") }
        try queue.close()
    }
}

/// Polls `condition` every 5 ms until it holds; fails after `timeout` (a
/// deadline for a stuck test, not a measure).
private func waitUntil(
    _ what: String, timeout: Duration = .seconds(120), sourceLocation: SourceLocation = #_sourceLocation,
    _ condition: () -> Bool
) async throws {
    let deadline = ContinuousClock.now + timeout
    while !condition() {
        guard ContinuousClock.now < deadline else {
            Issue.record("timed out waiting for: \(what)", sourceLocation: sourceLocation)
            throw CancellationError()
        }
        try await Task.sleep(for: .milliseconds(5))
    }
}
