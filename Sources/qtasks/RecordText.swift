import Foundation
import QTasks

/// A task's record as `qtasks result` prints it: one `field: value` line
/// each, the traceback last.
enum RecordText {
    static func lines(_ record: TaskRecord) -> [String] {
        var fields: [(String, String)] = [
            ("uuid", record.uuid),
            ("task", record.taskName),
            ("status", record.status.rawValue),
        ]
        if let result = record.result, record.status == .success { fields.append(("result", result.description)) }
        if let failure = record.failure { fields.append(("error", "\(failure.type): \(failure.message)")) }
        if let retryDelay = record.retryDelay, record.status == .retry {
            fields.append(("next attempt in", TimeText.seconds(retryDelay)))
        }
        fields.append(("queue", record.queue))
        fields.append(("attempts", String(record.attempt)))
        if let workerID = record.workerID { fields.append(("worker", workerID)) }
        fields.append(("created", TimeText.utc(record.createdAt)))
        if let startedAt = record.startedAt { fields.append(("started", TimeText.utc(startedAt))) }
        if let finishedAt = record.finishedAt { fields.append(("finished", TimeText.utc(finishedAt))) }
        if let duration = record.duration { fields.append(("duration", TimeText.seconds(duration))) }
        fields.append(("updated", TimeText.utc(record.updatedAt)))
        if let arguments = record.arguments { fields.append(("arguments", Self.arguments(arguments))) }
        if let traceID = record.traceID { fields.append(("trace id", traceID)) }
        if let deadLetterQueue = record.deadLetterQueue { fields.append(("dead-letter queue", deadLetterQueue)) }
        let width = fields.map(\.0.count).max() ?? 0
        var lines = fields.map { name, value in
            name + ":" + String(repeating: " ", count: width - name.count + 1) + value
        }
        if let traceback = record.failure?.traceback {
            lines.append("traceback:")
            lines += indented(traceback)
        }
        return lines
    }

    /// `args [2,3] kwargs {}`, `(secret: not recorded)`, `(truncated) {"args":[…`.
    static func arguments(_ arguments: RecordedArguments) -> String {
        if arguments.omitted { return "(secret: not recorded)" }
        if arguments.truncated { return "(truncated) " + (arguments.text ?? "") }
        return "args \(JSONValue.array(arguments.args)) kwargs \(JSONValue.object(arguments.kwargs))"
    }

    /// Each line of `text` indented by four spaces.
    static func indented(_ text: String) -> [String] {
        text.split(separator: "\n", omittingEmptySubsequences: false).map { "    " + $0 }
    }
}
