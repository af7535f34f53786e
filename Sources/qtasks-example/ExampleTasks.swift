import Foundation
import QTasks
import QTasksState
import Synchronization

/// The tasks of the example worker: what a user tries first.
enum ExampleTasks {
    /// Registers every example task on `app`; `step1` and `step2` keep
    /// their state in `stateStore`.
    static func register(on app: TaskApp, stateStore: Dependency<any StateStore>) throws {
        // add(a, b): positional or keyword (`{"kwargs": {"a": 2, "b": 3}}`).
        try app.register(Example.add) { a, b in
            let sum = a + b
            // Whole numbers come back as integers, as Python's 2 + 3 == 5.
            if let whole = Int64(exactly: sum) { return .int(whole) }
            return .double(sum)
        }

        // echo(...): returns its arguments exactly as received.
        try app.register(Example.echo) { (context: TaskContext) in
            ["args": .array(context.arguments.args), "kwargs": .object(context.arguments.kwargs)]
        }

        // sleep(seconds): waits, cooperatively (cancellation ends it early).
        try app.register(Example.sleep) { seconds in
            guard seconds >= 0, seconds <= 3600 else {
                throw ExampleError("seconds must be between 0 and 3600, not \(seconds)")
            }
            try await Task.sleep(for: .seconds(seconds))
            return seconds
        }

        // long_sleep(seconds): sleep acknowledged on start, so that it may
        // outlast the broker's consumer_timeout (docs/reliability.md).
        try app.register(Example.longSleep) { seconds in
            guard seconds >= 0, seconds <= 86_400 else {
                throw ExampleError("seconds must be between 0 and 86400, not \(seconds)")
            }
            try await Task.sleep(for: .seconds(seconds))
            return seconds
        }

        // fail(message): always throws, to see an error result and the
        // dead-letter queue.
        try app.register(Example.fail) { message in
            throw ExampleError(message ?? "failed on purpose")
        }

        // word_count(text, top): real work on the input.
        try app.register(Example.wordCount) { text, top in
            WordCount(text: text, top: top ?? 5)
        }

        // mask_card(number): secret arguments, never recorded in task
        // events or result stores (TaskOptions(recordsArguments: false)).
        try app.register(Example.maskCard) { number in
            let digits = number.filter(\.isNumber)
            guard digits.count >= 12, digits.count <= 19 else {
                throw ExampleError("a card number has 12 to 19 digits, not \(digits.count)")
            }
            return "**** **** **** " + String(digits.suffix(4))
        }

        // test_depends(): the seed's Depends example. The task gets a
        // database connection set up for this call and closed after it:
        // stdout shows "Вызов выполнен", then "close...".
        try app.register(Example.testDepends) { (context: TaskContext) in
            let db = try await context.resolve(exampleDatabase)
            try await db.execute("SELECT 1")
            printLine("Вызов выполнен")
        }

        // always_fail, limited_sleep, give_up, crash (a test task):
        // ExampleTasks+Reliability.swift.
        try registerReliabilityTasks(on: app)

        // work(ms): where a task ran, for fleets and routing
        // (ExampleTasks+Fleet.swift).
        try registerFleetTasks(on: app)

        // step1(user?), step2(user?): the seed's State example
        // (ExampleTasks+State.swift).
        try registerStateSteps(on: app, stateStore: stateStore)
        // register_ask, register_phone, register_confirm: the same form as
        // a workflow (docs/workflows.md).
        try registerRegistrationSteps(on: app, stateStore: stateStore)
    }
}

/// The seed's `get_db`, an async context manager in Python: connect, hand
/// the connection to the task, print "close..." and disconnect when the
/// call ends (whether it succeeded or not).
let exampleDatabase = Dependency<FakeDatabase>("database", scope: .task) { _ in
    let db = try await FakeDatabase.connect()
    return .value(db, teardown: { db, _ in
        printLine("close...")
        await db.disconnect()
    })
}

/// A stand-in for a database connection: no server, but it behaves like
/// one (connect, execute, disconnect) and refuses work once closed.
final class FakeDatabase: Sendable {
    private let open = Mutex(false)

    private init() {}

    /// Connects; takes a moment, as a real connection would.
    static func connect() async throws -> FakeDatabase {
        try await Task.sleep(for: .milliseconds(1))
        let db = FakeDatabase()
        db.open.withLock { $0 = true }
        return db
    }

    /// Runs a statement.
    ///
    /// - Throws: ``ExampleError`` when the connection is closed.
    func execute(_ statement: String) async throws {
        guard open.withLock({ $0 }) else { throw ExampleError("database connection is closed") }
    }

    /// Closes the connection.
    func disconnect() async {
        open.withLock { $0 = false }
    }
}

/// Writes one line to stdout at once (unbuffered), so that the order of
/// lines is the order of events even when stdout is a pipe.
func printLine(_ line: String) {
    FileHandle.standardOutput.write(Data((line + "\n").utf8))
}

/// The error the example tasks throw; its message becomes the traceback.
struct ExampleError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Word statistics of a text: Unicode-aware, so Russian counts as words.
struct WordCount: Codable, Sendable {
    let words: Int
    let unique: Int
    let lines: Int
    let characters: Int
    /// The most frequent words, most frequent first, ties alphabetical.
    let top: [[JSONValue]]

    init(text: String, top limit: Int) {
        var counts: [String: Int] = [:]
        var words = 0
        // A word is a run of letters and digits, with inner apostrophes and
        // hyphens ("don't", "из-за").
        for token in text.split(whereSeparator: { !($0.isLetter || $0.isNumber || $0 == "'" || $0 == "-") }) {
            let word = token.trimmingCharacters(in: CharacterSet(charactersIn: "'-"))
            guard !word.isEmpty else { continue }
            counts[word.lowercased(), default: 0] += 1
            words += 1
        }
        self.words = words
        self.unique = counts.count
        self.lines = text.isEmpty ? 0 : text.split(separator: "\n", omittingEmptySubsequences: false).count
        self.characters = text.count
        self.top = counts.sorted { $0.value != $1.value ? $0.value > $1.value : $0.key < $1.key }
            .prefix(max(0, limit))
            .map { [.string($0.key), .int(Int64($0.value))] }
    }
}
