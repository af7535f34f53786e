import Foundation
import QTasks

extension ExampleTasks {
    /// `work(ms)`: the fleet and routing task. Sleeps `ms` milliseconds
    /// (default 0, at most 60 000) and returns where it ran:
    /// `{"pid": <worker process id>, "queue": <queue it came from>}`, so
    /// that a producer can count what each worker did.
    static func registerFleetTasks(on app: TaskApp) throws {
        try app.register(Example.work) { (context: TaskContext, ms: Int?) in
            let milliseconds = ms ?? 0
            guard (0...60_000).contains(milliseconds) else {
                throw ExampleError("ms must be between 0 and 60000, not \(milliseconds)")
            }
            if milliseconds > 0 { try await Task.sleep(for: .milliseconds(milliseconds)) }
            return ["pid": .int(Int64(ProcessInfo.processInfo.processIdentifier)), "queue": .string(context.queue)]
        }
    }
}
