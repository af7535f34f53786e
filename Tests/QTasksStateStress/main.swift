// A test helper, not a product: one "worker process" of the lost-update
// test in QTasksStateTests. It increments one field of one state COUNT times
// through the atomic operation (StateHandle.increment, built on modify).
//
// Usage: QTasksStateStress URL NAMESPACE KEY FIELD COUNT [START_AT]
//   START_AT  Unix time in seconds to start at, so that two processes
//             started one after the other overlap.
// With QTASKS_STRESS_OPEN_AT_START=1 it waits for START_AT before opening
// the store, so that several processes open a fresh file at once. With
// QTASKS_STRESS_CONCURRENCY=N it runs the COUNT increments from N tasks at
// once (a worker's concurrent handlers: the SQLite store commits them in
// groups).
// Prints one line: "incremented COUNT times in MS ms, last value N".
// Exit status 0 on success, 1 on a State error (printed to stderr), 2 on
// bad usage.
import Foundation
import QTasksState
import QTasksStateStores

let arguments = CommandLine.arguments
guard arguments.count == 6 || arguments.count == 7, let count = Int(arguments[5]), count >= 0 else {
    FileHandle.standardError.write(Data("usage: QTasksStateStress URL NAMESPACE KEY FIELD COUNT [START_AT]\n".utf8))
    exit(2)
}
let startAt = arguments.count == 7 ? Double(arguments[6]) : nil

func waitForStart() async throws {
    guard let startAt else { return }
    let wait = startAt - Date().timeIntervalSince1970
    if wait > 0 { try await Task.sleep(for: .seconds(wait)) }
}

do {
    let openAtStart = ProcessInfo.processInfo.environment["QTASKS_STRESS_OPEN_AT_START"] == "1"
    if openAtStart { try await waitForStart() }
    let store = try await StateStores.open(url: arguments[1])
    let state = AnyState(namespace: arguments[2], key: arguments[3], store: store)
    if !openAtStart { try await waitForStart() }
    let clock = ContinuousClock()
    let start = clock.now
    let concurrency = max(1, Int(ProcessInfo.processInfo.environment["QTASKS_STRESS_CONCURRENCY"] ?? "") ?? 1)
    let field = arguments[4]
    // The highest value this process saw: its last one when serial.
    let last = try await withThrowingTaskGroup(of: Int64.self) { group in
        for task in 0..<concurrency {
            let share = count / concurrency + (task < count % concurrency ? 1 : 0)
            group.addTask {
                var last: Int64 = 0
                for _ in 0..<share { last = try await state.increment(field) }
                return last
            }
        }
        var highest: Int64 = 0
        for try await last in group { highest = max(highest, last) }
        return highest
    }
    let elapsed = clock.now - start
    let milliseconds = elapsed.components.seconds * 1000 + elapsed.components.attoseconds / 1_000_000_000_000_000
    print("incremented \(count) times in \(milliseconds) ms, last value \(last)")
    await store.close()
} catch {
    FileHandle.standardError.write(Data("QTasksStateStress: \(error)\n".utf8))
    exit(1)
}
