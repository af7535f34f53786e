import Foundation
import QTasks

/// With `QTASKS_EXAMPLE_RUN_LOG=FILE`, every handler run appends a line
/// `<task name> <uuid> <attempt> start` to FILE as it starts, and
/// `… end` when it returned (not when it threw or was cancelled): the fault tests
/// count executions with it (duplicates included, and runs whose worker
/// was SIGKILLed before it could record anything else). One `write(2)`
/// with `O_APPEND` per line, so lines of several workers never interleave.
struct RunLogMiddleware: TaskMiddleware {
    let descriptor: Int32

    init?(environment: [String: String] = ProcessInfo.processInfo.environment) {
        guard let path = environment["QTASKS_EXAMPLE_RUN_LOG"], !path.isEmpty else { return nil }
        let descriptor = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else { return nil }
        self.descriptor = descriptor
    }

    func run(_ context: TaskContext, next: (TaskContext) async throws -> JSONValue) async throws -> JSONValue {
        append("\(context.taskName) \(context.uuid) \(context.attempt) start\n")
        let value = try await next(context)
        append("\(context.taskName) \(context.uuid) \(context.attempt) end\n")
        return value
    }

    private func append(_ line: String) {
        let bytes = Array(line.utf8)
        _ = bytes.withUnsafeBytes { write(descriptor, $0.baseAddress, $0.count) }
    }
}
