import Foundation
import QTasksState
import QTasksStateSQLite
import QTasksStateStores
import Testing

/// Backend URLs: parsing, errors, redaction. No server needed.
@Suite("State store URLs")
struct StateURLTests {
    @Test func memoryURLOpensAnEmptyPrivateStore() async throws {
        let first = try await StateStores.open(url: "memory://")
        let second = try await StateStores.open(url: "memory://")
        try await first.set("a", to: 1, in: StateID(namespace: "N"))
        #expect(try await second.getAll(in: StateID(namespace: "N")) == [:])
        #expect(first is MemoryStateStore)
    }

    @Test func sqliteURLsTakeAbsoluteAndRelativePaths() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let absolute = try await StateStores.open(url: "sqlite://\(directory.path)/a.db?synchronous=full")
        #expect((absolute as? SQLiteStateStore)?.path == "\(directory.path)/a.db")
        await absolute.close()

        // A relative path resolves against the current directory.
        let depth = FileManager.default.currentDirectoryPath.split(separator: "/").count
        let relativePath = String(repeating: "../", count: depth) + directory.path.dropFirst()
        let relative = try await StateStores.open(url: "sqlite://\(relativePath)/b.db")
        #expect(
            (relative as? SQLiteStateStore)?.path == FileManager.default.currentDirectoryPath + "/\(relativePath)/b.db")
        #expect(FileManager.default.fileExists(atPath: "\(directory.path)/b.db"))
        await relative.close()
    }

    @Test(arguments: [
        "", "state.db", "http://example.com", "mongodb://localhost", "sqlite://", "sqlite:///",
        "sqlite:///tmp/x.db?journal=off", "redis://", "redis://host:99999/0", "redis://host/zero",
        "redis://host:6379/0?timeout=1", "redis://user@host/0", "rediss://host/0", "memory://name",
    ])
    func malformedURLsGiveInvalidURL(_ url: String) async {
        await expectStateError(.invalidURL) { _ = try await StateStores.open(url: url) }
    }

    @Test func passwordsAreRedacted() async {
        #expect(StateStores.redactedURL("redis://:s3cret@host:6379/0") == "redis://:***@host:6379/0")
        #expect(StateStores.redactedURL("redis://alice:s3cret@host/1") == "redis://alice:***@host/1")
        #expect(StateStores.redactedURL("redis://s3cret@host/1") == "redis://***@host/1")
        #expect(StateStores.redactedURL("redis://:p@ss@host/1") == "redis://:***@host/1")
        #expect(StateStores.redactedURL("redis://host:6379/0") == "redis://host:6379/0")
        #expect(StateStores.redactedURL("sqlite:///data/a@b/state.db") == "sqlite:///data/a@b/state.db")
        #expect(StateStores.redactedURL("memory://") == "memory://")

        let error = await expectStateError(.invalidURL) {
            _ = try await StateStores.open(url: "redis://:s3cret@host:6379/zero")
        }
        #expect(error?.message.contains("s3cret") == false)
        #expect(error?.message.contains("redis://:***@host:6379/zero") == true)
        let unknown = await expectStateError(.invalidURL) {
            _ = try await StateStores.open(url: "mysql://u:s3cret@h/db")
        }
        #expect(unknown?.message.contains("s3cret") == false)
    }

    @Test func unreachableRedisIsUnavailableAndNamed() async throws {
        let port = try freePort()
        var configuration = StateStoreConfiguration()
        configuration.timeout = .seconds(2)
        let error = await expectStateError(.unavailable) {
            _ = try await StateStores.open(url: "redis://:s3cret@127.0.0.1:\(port)/0", configuration: configuration)
        }
        #expect(error?.message.contains("redis://:***@127.0.0.1:\(port)/0") == true)
        #expect(error?.message.contains("s3cret") == false)
        #expect(error?.message.contains("refused") == true)
    }

    @Test func missingSQLiteDirectoryIsUnavailable() async {
        let error = await expectStateError(.unavailable) {
            _ = try await StateStores.open(url: "sqlite:///nonexistent-\(UUID())/state.db")
        }
        #expect(error?.message.contains("nonexistent-") == true)
    }

    @Test func aFileThatIsNotADatabaseIsReported() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let path = "\(directory.path)/garbage.db"
        try Data(repeating: 0x41, count: 8192).write(to: URL(fileURLWithPath: path))
        do {
            let store = try await StateStores.open(url: "sqlite://\(path)")
            await store.close()
            Issue.record("opened a file that is not a database")
        } catch let error as StateError {
            #expect(error.code == .corrupted, "\(error)")
        }
    }
}
