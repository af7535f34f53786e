import Foundation
import QTasks

#if canImport(Glibc)
import Glibc
#endif

extension ExampleTasks {
    /// Tasks that show (and let the fault-injection tests provoke) retries,
    /// dead letters, time limits and self-cancellation. See
    /// docs/reliability.md.
    static func registerReliabilityTasks(on app: TaskApp) throws {
        // always_fail(message): throws every time, printing
        // "always_fail attempt=<n> at=<unix seconds>" first, so the retry
        // schedule can be watched. With --max-attempts N it reaches
        // <queue>.dlq after exactly N runs.
        try app.register(Example.alwaysFail) { (context: TaskContext, message: String?) -> JSONValue in
            printLine("always_fail attempt=\(context.attempt) at=\(Date().timeIntervalSince1970)")
            throw ExampleError(message ?? "failed on purpose")
        }

        // limited_sleep(seconds): sleeps with a task-scoped resource, under
        // its own time limit of 1 s (whatever the worker's is). Over it:
        // status error, "TaskTimeLimitError: ...", and the resource's
        // teardown prints "limited_sleep resource released: <outcome>".
        try app.register(Example.limitedSleep) { (context: TaskContext, seconds: Double) in
            _ = try await context.resolve(limitedSleepResource)
            try await Task.sleep(for: .seconds(min(max(seconds, 0), 3600)))
            return seconds
        }

        // give_up(reason): cancels itself; status cancel, not retried, not
        // dead-lettered.
        try app.register(Example.giveUp) { (context: TaskContext, reason: String?) -> JSONValue in
            try context.cancel(reason: reason ?? "the task gave up")
        }

        // crash(): A TEST TASK. It kills the worker process it runs in
        // (abort(), as a segfault or an out-of-memory kill would), so that
        // the message comes back again and again: a poison message. Only
        // registered when QTASKS_EXAMPLE_CRASH_TASK=1, so that nobody takes
        // down a real worker by sending it.
        if ProcessInfo.processInfo.environment["QTASKS_EXAMPLE_CRASH_TASK"] == "1" {
            try app.register(Example.crash) { () -> JSONValue in
                printLine("crash: aborting the worker process on purpose")
                abort()
            }
        }
    }
}

/// limited_sleep's task-scoped resource: says when it is set up and torn
/// down, and with which outcome.
let limitedSleepResource = Dependency<String>("limited_sleep resource", scope: .task) { _ in
    printLine("limited_sleep resource acquired")
    return .value("resource", teardown: { _, outcome in
        printLine("limited_sleep resource released: \(outcome)")
    })
}
