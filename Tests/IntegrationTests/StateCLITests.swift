import Foundation
import QTasks
import QTasksState
import QTasksStateStores
import Testing

/// `qtasks state get|set|delete|clear` (the built executable) against an
/// SQLite file and a real Redis. Needs no broker.
@Suite(.timeLimit(.minutes(2)))
struct StateCLITests {
    /// set, get (all and one field), delete, clear, as an operator would,
    /// checked through the CLI and through a store opened by the test.
    func roundTrip(url: String, passURLBy viaEnvironment: Bool) async throws {
        let namespace = "CLITest\(UUID().uuidString.prefix(8))"
        let key = "user-1"
        let environment = viaEnvironment ? ["QTASKS_STATE_URL": url] : [:]
        func state(_ arguments: [String], expect status: Int32 = 0, sourceLocation: SourceLocation = #_sourceLocation)
            async throws -> CompletedProcess
        {
            // --state before the arguments: after `--` everything is positional.
            let run = try await runStateCLI(
                ["state", arguments[0]] + (viaEnvironment ? [] : ["--state", url]) + arguments.dropFirst(),
                environment: environment)
            #expect(run.termination == .exited(status), "\(arguments): \(run)", sourceLocation: sourceLocation)
            return run
        }

        #expect(try await state(["set", namespace, "--key", key, "state", "await_phone"]).stdout.isEmpty)
        _ = try await state(["set", namespace, "--key", key, "step", "1"])
        _ = try await state(["set", namespace, "--key", key, "prompt", "Введите телефон"])
        _ = try await state(["set", namespace, "--key", key, "tags", #"{"a": [1, 2.5, null]}"#])
        _ = try await state(["set", namespace, "--key", key, "delta", "--", "-5"])
        _ = try await state(["set", namespace, "--key", key, "quoted", #""1""#])

        let all = try await state(["get", namespace, "--key", key])
        #expect(
            all.stdout
                == #"{"delta":-5,"prompt":"Введите телефон","quoted":"1","state":"await_phone","step":1,"tags":{"a":[1,2.5,null]}}"#
                + "\n")
        #expect(try await state(["get", namespace, "--key", key, "step"]).stdout == "1\n")
        #expect(try await state(["get", namespace, "--key", key, "prompt"]).stdout == "\"Введите телефон\"\n")
        // Another key, and no key, are other states.
        #expect(try await state(["get", namespace]).stdout == "{}\n")
        #expect(try await state(["get", namespace, "--key", "user-2"]).stdout == "{}\n")

        // What the CLI wrote is what a task's State handle reads.
        let store = try await StateStores.open(url: url)
        let handle = AnyState(namespace: namespace, key: key, store: store)
        #expect(try await handle.get("step", as: Int.self) == 1)
        #expect(try await handle.get("state", as: String.self) == "await_phone")
        #expect(try await handle.get("quoted") == .string("1"))

        _ = try await state(["delete", namespace, "--key", key, "state"])
        let missing = try await state(["get", namespace, "--key", key, "state"], expect: 2)
        #expect(missing.stdout.isEmpty)
        #expect(missing.stderr.contains("field 'state' is not set in state \(namespace)/\(key)"), "\(missing)")
        // Deleting what is not there is fine.
        _ = try await state(["delete", namespace, "--key", key, "state"])
        #expect(try await handle.get("state") == nil)

        _ = try await state(["clear", namespace, "--key", key])
        #expect(try await state(["get", namespace, "--key", key]).stdout == "{}\n")
        #expect(try await handle.getAll() == [:])
        await store.close()
    }

    @Test func roundTripOnSQLite() async throws {
        let directory = try StateDirectory()
        defer { directory.remove() }
        try await roundTrip(url: directory.sqliteURL, passURLBy: false)
        try await roundTrip(url: directory.sqliteURL, passURLBy: true)
    }

    @Test(.enabled(if: IntegrationRedis.enabled, "no Redis at QTASKS_REDIS_URL; deploy/redis.sh start"))
    func roundTripOnRedis() async throws {
        try await roundTrip(url: IntegrationRedis.url, passURLBy: false)
        try await roundTrip(url: IntegrationRedis.url, passURLBy: true)
    }

    @Test func setWithTTLExpires() async throws {
        let directory = try StateDirectory()
        defer { directory.remove() }
        let url = directory.sqliteURL
        let set = try await runStateCLI(["state", "set", "Expiring", "a", "1", "--ttl", "0.3", "--state", url])
        #expect(set.termination == .exited(0), "\(set)")
        try await Task.sleep(for: .milliseconds(600))
        let get = try await runStateCLI(["state", "get", "Expiring", "--state", url])
        #expect(get.stdout == "{}\n", "\(get)")
    }

    /// `qtasks state keys`: namespaces, then one namespace's keys (the
    /// keyless state as null), sorted, bounded by --limit with a note; on
    /// SQLite and on Redis.
    func listsNamespacesAndKeys(url: String) async throws {
        let namespace = "\u{1}KeysCLI\(UUID().uuidString.prefix(8))"  // before any other namespace
        let other = namespace + "-other"
        func state(_ arguments: [String], sourceLocation: SourceLocation = #_sourceLocation) async throws -> CompletedProcess {
            let run = try await runStateCLI(["state"] + arguments + ["--state", url])
            #expect(run.termination == .exited(0), "\(arguments): \(run)", sourceLocation: sourceLocation)
            return run
        }
        for (key, field) in [("b", "x"), ("a", "x"), ("10", "x"), ("9", "x")] {
            _ = try await state(["set", namespace, "--key", key, field, "1"])
        }
        _ = try await state(["set", namespace, "x", "1"])
        _ = try await state(["set", other, "--key", "k", "x", "1"])
        let store = try await StateStores.open(url: url)

        let keys = try await state(["keys", namespace])
        #expect(keys.stdout == #"[null,"10","9","a","b"]"# + "\n")
        #expect(keys.stderr.isEmpty, "\(keys)")
        let cut = try await state(["keys", namespace, "--limit", "2"])
        #expect(cut.stdout == #"[null,"10"]"# + "\n")
        #expect(cut.stderr.contains("more than 2 keys"), "\(cut)")
        #expect(try await state(["keys", namespace + "-none"]).stdout == "[]\n")

        let namespaces = try await state(["keys", "--limit", "2"])
        let escapedNamespace = JSONValue.string(namespace).description
        let escapedOther = JSONValue.string(other).description
        #expect(namespaces.stdout == "[\(escapedNamespace),\(escapedOther)]\n")
        let all = try await state(["keys", "--limit", "100000"])
        #expect(all.stdout.contains(escapedNamespace) && all.stdout.contains(escapedOther), "\(all)")

        for key in ["b", "a", "10", "9"] { try await store.clear(StateID(namespace: namespace, key: key)) }
        try await store.clear(StateID(namespace: namespace))
        try await store.clear(StateID(namespace: other, key: "k"))
        #expect(try await state(["keys", namespace]).stdout == "[]\n")
        await store.close()
    }

    @Test func keysOnSQLite() async throws {
        let directory = try StateDirectory()
        defer { directory.remove() }
        try await listsNamespacesAndKeys(url: directory.sqliteURL)
    }

    @Test(.enabled(if: IntegrationRedis.enabled, "no Redis at QTASKS_REDIS_URL; deploy/redis.sh start"))
    func keysOnRedis() async throws {
        try await listsNamespacesAndKeys(url: IntegrationRedis.url)
    }

    /// Bad URLs and bad names: status 64 and a message naming the problem,
    /// never the password.
    @Test func badUsageExits64WithAClearMessage() async throws {
        for (arguments, expected) in [
            (["get", "MyState", "--state", "mysql://localhost/db"], "unknown State backend scheme 'mysql'"),
            (["get", "MyState", "--state", "redis://:hunter2@127.0.0.1:6379/zero"], "must be a database number"),
            (["get", "MyState", "--state", "not a url"], "is not a State backend URL"),
            (["get", "My:State", "--state", "memory://"], "must not contain ':'"),
            (["set", "MyState", "--key", "", "a", "1", "--state", "memory://"], "must not be empty"),
            (["set", "MyState", "a", "1", "--ttl", "0", "--state", "memory://"], "--ttl"),
            (["frobnicate", "MyState"], "frobnicate"),
            (["keys", "My:State", "--state", "memory://"], "must not contain ':'"),
            (["keys", "--limit", "0", "--state", "memory://"], "--limit"),
        ] {
            let run = try await runStateCLI(["state"] + arguments)
            #expect(run.termination == .exited(64), "\(arguments): \(run)")
            #expect(run.stderr.contains(expected), "\(arguments): \(run)")
            #expect(!run.stderr.contains("hunter2"), "the password is not printed: \(run)")
        }
    }

    /// A backend that cannot be reached or opened: status 4, promptly, with
    /// a message naming it (password redacted).
    @Test func unreachableBackendExits4() async throws {
        let redis = try await runStateCLI(["state", "get", "MyState", "--state", "redis://:hunter2@127.0.0.1:1/0"])
        #expect(redis.termination == .exited(4), "\(redis)")
        #expect(redis.stderr.contains("127.0.0.1:1"), "\(redis)")
        #expect(!redis.stderr.contains("hunter2"), "\(redis)")
        #expect(redis.elapsed < .seconds(15), "\(redis)")

        let sqlite = try await runStateCLI(["state", "set", "MyState", "a", "1", "--state", "sqlite:///nonexistent-dir-\(UUID())/state.db"])
        #expect(sqlite.termination == .exited(4), "\(sqlite)")
        #expect(sqlite.stderr.contains("nonexistent-dir"), "\(sqlite)")
    }
}
