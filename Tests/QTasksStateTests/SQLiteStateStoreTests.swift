import Foundation
import GRDB
import QTasks
import QTasksState
import QTasksStateStores
import Testing

/// SQLite specifics: durability across a reopen, the on-disk layout, lazy
/// expiry.
@Suite("SQLite backend")
struct SQLiteStateStoreTests {
    @Test func writesSurviveClosingAndReopeningTheStore() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let url = "sqlite://\(directory.path)/state.db"
        let id = StateID(namespace: "RegistrationState", key: "42")

        let before = try await StateStores.open(url: url)
        try await before.update(["state": "await_phone", "step": 1, "prompt": "Введите телефон"], in: id)
        try await before.modify(id) { fields in fields["step"] = 2 }
        await before.close()  // a worker restart

        let after = try await StateStores.open(url: url)
        #expect(try await after.getAll(in: id) == ["state": "await_phone", "step": 2, "prompt": "Введите телефон"])
        await after.close()
    }

    @Test func twoStoresOnOneFileSeeEachOthersWrites() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let url = "sqlite://\(directory.path)/state.db"
        let first = try await StateStores.open(url: url)
        let second = try await StateStores.open(url: url)
        let state = AnyState(namespace: "Shared", store: first)
        let other = AnyState(namespace: "Shared", store: second)
        try await state.set("a", to: 1)
        #expect(try await other.get("a") == 1)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for index in 0..<100 {
                group.addTask { try await (index.isMultiple(of: 2) ? state : other).increment("n") }
            }
            try await group.waitForAll()
        }
        #expect(try await state.get("n", as: Int.self) == 100)
        await first.close()
        await second.close()
    }

    /// One row per state, the document as unescaped JSON, WAL mode.
    @Test func layoutIsOneRowPerStateWithUnescapedJSON() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let path = "\(directory.path)/state.db"
        let store = try await StateStores.open(url: "sqlite://\(path)")
        try await store.update(["prompt": "Введите телефон", "step": 1], in: StateID(namespace: "Reg", key: "42"))
        try await store.set("a", to: true, in: StateID(namespace: "Reg"), ttl: .seconds(60))
        await store.close()

        let rows = try raw(path) { db in
            try Row.fetchAll(db, sql: "SELECT namespace, key, document, expires_at FROM qtasks_state ORDER BY key")
        }
        #expect(rows.count == 2)
        #expect(rows[0]["namespace"] as String == "Reg")
        #expect(rows[0]["key"] as String == "")
        #expect(rows[0]["document"] as String == #"{"a":true}"#)
        let expiresAt: Int64 = try #require(rows[0]["expires_at"])
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        #expect(expiresAt > now + 50_000 && expiresAt <= now + 60_000)
        #expect(rows[1]["key"] as String == "42")
        #expect(rows[1]["document"] as String == #"{"prompt":"Введите телефон","step":1}"#)
        #expect(rows[1]["expires_at"] as Int64? == nil)
        let mode = try raw(path) { db in try String.fetchOne(db, sql: "PRAGMA journal_mode") }
        #expect(mode == "wal")
    }

    /// Expired rows are replaced by the next write, and swept by the first
    /// write of a newly opened store.
    @Test func expiredRowsArePurged() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let path = "\(directory.path)/state.db"
        let first = try await StateStores.open(url: "sqlite://\(path)")
        for index in 0..<5 {
            try await first.set("a", to: 1, in: StateID(namespace: "Old", key: "\(index)"), ttl: .milliseconds(100))
        }
        await first.close()
        try await Task.sleep(for: .milliseconds(300))

        let second = try await StateStores.open(url: "sqlite://\(path)")
        try await second.set("b", to: 2, in: StateID(namespace: "New"))
        await second.close()
        let count = try raw(path) { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM qtasks_state") }
        #expect(count == 1)
    }

    @Test func aCorruptedDocumentIsReported() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let path = "\(directory.path)/state.db"
        let store = try await StateStores.open(url: "sqlite://\(path)")
        let id = StateID(namespace: "Broken")
        try await store.set("a", to: 1, in: id)
        try raw(path) { db in try db.execute(sql: "UPDATE qtasks_state SET document = 'not json'") }
        let error = await expectStateError(.corrupted) { _ = try await store.getAll(in: id) }
        #expect(error?.message.contains("Broken") == true)
        await store.close()
    }

    /// Runs `body` on a separate GRDB connection to the file, for a raw look.
    private func raw<T>(_ path: String, _ body: (Database) throws -> T) throws -> T {
        let queue = try DatabaseQueue(path: path)
        defer { try? queue.close() }
        return try queue.inDatabase(body)
    }
}
