import Foundation
import QTasks
import QTasksState
import Testing

/// The listing part of the State contract (`namespaces(limit:)`,
/// `keys(in:limit:)`, docs/state.md), against memory, a real SQLite file and
/// a real Redis.
@Suite("State listing contract")
struct StateListingContractTests {
    /// The listing order: by UTF-8 bytes.
    private func sortedByBytes(_ names: [String]) -> [String] {
        names.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
    }

    /// Waits (polling, up to 30 s) until `state` reads as empty.
    private func awaitExpiry(of state: StateID, in store: any StateStore) async throws {
        let deadline = ContinuousClock.now + .seconds(30)
        while try await store.getAll(in: state) != [:] {
            try #require(ContinuousClock.now < deadline, "state \(state) never expired")
            try await Task.sleep(for: .milliseconds(20))
        }
    }

    @Test(arguments: Backend.available)
    func keysAreListedSortedWithTheKeylessStateFirst(_ backend: Backend) async throws {
        try await withStore(backend) { store in
            let namespace = uniqueNamespace("List")
            let keys = ["b", "a", "10", "9", "Z", "x:y", "ä", "пользователь", "[1]", "*", "a?"]
            for key in keys {
                try await store.set("k", to: .string(key), in: StateID(namespace: namespace, key: key))
            }
            #expect(try await store.keys(in: namespace, limit: 100) == sortedByBytes(keys))

            try await store.set("k", to: "keyless", in: StateID(namespace: namespace))
            let all = try await store.keys(in: namespace, limit: 100)
            #expect(all == [nil] + sortedByBytes(keys).map(Optional.some))
            // Each listed key names its state.
            for key in all {
                #expect(try await store.get("k", in: StateID(namespace: namespace, key: key)) != nil, "\(key ?? "nil")")
            }

            // Bounded: the first `limit`, and `limit + 1` tells a cut list.
            #expect(try await store.keys(in: namespace, limit: 3) == Array(all.prefix(3)))
            #expect(try await store.keys(in: namespace, limit: 1) == [nil])
            #expect(try await store.keys(in: namespace, limit: 0) == [])
            #expect(try await store.keys(in: namespace, limit: all.count + 1).count == all.count, "not truncated")

            // Cleared states and deleted last fields are gone.
            try await store.clear(StateID(namespace: namespace, key: "b"))
            try await store.delete("k", in: StateID(namespace: namespace))
            #expect(try await store.keys(in: namespace, limit: 100) == sortedByBytes(keys.filter { $0 != "b" }))
            #expect(try await store.keys(in: uniqueNamespace("Empty"), limit: 10) == [])
        }
    }

    /// A namespace that is a prefix of another, or holds glob characters
    /// (Redis `SCAN MATCH`), lists only its own keys.
    @Test(arguments: Backend.available)
    func namespacesDoNotLeakIntoEachOther(_ backend: Backend) async throws {
        try await withStore(backend) { store in
            let base = uniqueNamespace("Leak")
            let glob = base + "*?[a]\\"
            let longer = base + "zz"
            let alsoGlobMatch = base + "a"  // what `<base>?[a]` would match unescaped
            try await store.set("x", to: 1, in: StateID(namespace: base, key: "own"))
            try await store.set("x", to: 1, in: StateID(namespace: glob, key: "globbed"))
            try await store.set("x", to: 1, in: StateID(namespace: longer, key: "longer"))
            try await store.set("x", to: 1, in: StateID(namespace: alsoGlobMatch, key: "a"))
            try await store.set("x", to: 1, in: StateID(namespace: longer))
            #expect(try await store.keys(in: base, limit: 10) == ["own"])
            #expect(try await store.keys(in: glob, limit: 10) == ["globbed"])
            #expect(try await store.keys(in: longer, limit: 10) == [nil, "longer"])

            let listed = try await store.namespaces(limit: 100_000)
            for namespace in [base, glob, longer, alsoGlobMatch] {
                #expect(listed.filter { $0 == namespace }.count == 1, "\(namespace) listed once")
            }
            #expect(listed == sortedByBytes(listed), "sorted by UTF-8 bytes")
            #expect(Set(listed).count == listed.count, "no duplicates")
        }
    }

    /// `namespaces(limit:)` keeps the first `limit` in order. The names start
    /// with U+0001 so that they come before every other namespace of a Redis
    /// shared with other tests.
    @Test(arguments: Backend.available)
    func namespacesAreBoundedByLimit(_ backend: Backend) async throws {
        try await withStore(backend) { store in
            let base = "\u{1}" + uniqueNamespace("First")
            let names = [base + "c", base + "a", base + "b"]
            for (index, name) in names.enumerated() {
                // Several states per namespace: each namespace is listed once.
                try await store.set("x", to: 1, in: StateID(namespace: name))
                try await store.set("x", to: 1, in: StateID(namespace: name, key: "k\(index)"))
            }
            #expect(try await store.namespaces(limit: 2) == [base + "a", base + "b"])
            #expect(try await store.namespaces(limit: 0) == [])
        }
    }

    /// Many keys: more than one `SCAN` round on Redis, and more than the
    /// collector keeps between trims.
    @Test(arguments: Backend.available)
    func manyKeysKeepTheFirstInOrder(_ backend: Backend) async throws {
        try await withStore(backend) { store in
            let namespace = uniqueNamespace("Many")
            let keys = (0..<1_500).map { "key-\($0)" }
            for key in keys.shuffled() {
                try await store.set("x", to: 1, in: StateID(namespace: namespace, key: key))
            }
            let sorted = sortedByBytes(keys)
            #expect(try await store.keys(in: namespace, limit: 5) == Array(sorted.prefix(5)))
            #expect(try await store.keys(in: namespace, limit: 2_000) == sorted)
        }
    }

    @Test(arguments: Backend.available)
    func expiredStatesAreNotListed(_ backend: Backend) async throws {
        try await withStore(backend) { store in
            let namespace = uniqueNamespace("Expiring")
            let onlyExpiring = uniqueNamespace("Gone")
            let short = StateID(namespace: namespace, key: "short")
            let keyless = StateID(namespace: namespace)
            let gone = StateID(namespace: onlyExpiring, key: "k")
            try await store.set("a", to: 1, in: short, ttl: .milliseconds(200))
            try await store.set("a", to: 1, in: keyless, ttl: .milliseconds(200))
            try await store.set("a", to: 1, in: gone, ttl: .milliseconds(200))
            try await store.set("a", to: 1, in: StateID(namespace: namespace, key: "long"), ttl: .seconds(60))
            // Listed while alive (unless the machine stalled for 200 ms).
            let before = try await store.keys(in: namespace, limit: 10)
            #expect(before.contains("long"))

            for state in [short, keyless, gone] { try await awaitExpiry(of: state, in: store) }
            #expect(try await store.keys(in: namespace, limit: 10) == ["long"])
            #expect(try await store.keys(in: onlyExpiring, limit: 10) == [])
            let namespaces = try await store.namespaces(limit: 100_000)
            #expect(namespaces.contains(namespace))
            #expect(!namespaces.contains(onlyExpiring), "a namespace whose states all expired is not listed")
        }
    }

    @Test(arguments: Backend.available)
    func badArgumentsAreRejected(_ backend: Backend) async throws {
        try await withStore(backend) { store in
            await expectStateError(.invalidArgument) { _ = try await store.namespaces(limit: -1) }
            await expectStateError(.invalidArgument) { _ = try await store.keys(in: "Good", limit: -1) }
            await expectStateError(.invalidArgument) { _ = try await store.keys(in: "", limit: 10) }
            await expectStateError(.invalidArgument) { _ = try await store.keys(in: "a:b", limit: 10) }
            await store.close()
            await expectStateError(.closed) { _ = try await store.namespaces(limit: 10) }
            await expectStateError(.closed) { _ = try await store.keys(in: "Good", limit: 10) }
        }
    }

    /// A store written outside the package, without the listing operations,
    /// still compiles and says clearly that it cannot list.
    @Test func storesWithoutListingThrowUnsupported() async throws {
        struct ForeignStore: StateStore {
            func get(_ field: String, in state: StateID) async throws -> JSONValue? { nil }
            func getAll(in state: StateID) async throws -> [String: JSONValue] { [:] }
            func update(_ fields: [String: JSONValue], in state: StateID, ttl: Duration?) async throws {}
            func delete(_ field: String, in state: StateID) async throws {}
            func clear(_ state: StateID) async throws {}
            func modify<T: Sendable>(
                _ state: StateID, ttl: Duration?, _ body: @escaping @Sendable (inout [String: JSONValue]) throws -> T
            ) async throws -> T {
                var document: [String: JSONValue] = [:]
                return try body(&document)
            }
            func close() async {}
        }
        let store: any StateStore = ForeignStore()
        let error = await expectStateError(.unsupported) { _ = try await store.namespaces(limit: 10) }
        #expect(error?.message.contains("ForeignStore") == true)
        await expectStateError(.unsupported) { _ = try await store.keys(in: "Orders", limit: 10) }
    }
}
