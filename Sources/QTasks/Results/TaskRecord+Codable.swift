import Foundation

/// JSON form (`qtasks result --json`, `qtasks tasks --json`, the SQLite
/// backend's `record` column): snake_case keys, times in Unix seconds,
/// durations in seconds, keys without a value left out.
extension TaskRecord {
    enum CodingKeys: String, CodingKey {
        case uuid, queue, status, priority, arguments, attempt, duration, result, failure, events
        case taskName = "task_name"
        case workerID = "worker_id"
        case traceID = "trace_id"
        case createdAt = "created_at"
        case updatedAt = "updated_at"
        case startedAt = "started_at"
        case finishedAt = "finished_at"
        case retryDelay = "retry_delay"
        case deadLetterQueue = "dead_letter_queue"
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        func date(_ key: CodingKeys) throws -> Date? {
            try c.decodeIfPresent(Double.self, forKey: key).map(Date.init(timeIntervalSince1970:))
        }
        func duration(_ key: CodingKeys) throws -> Duration? {
            try c.decodeIfPresent(Double.self, forKey: key).map { Duration.seconds($0) }
        }
        self.init(
            uuid: try c.decode(String.self, forKey: .uuid),
            taskName: try c.decode(String.self, forKey: .taskName),
            queue: try c.decodeIfPresent(String.self, forKey: .queue) ?? "",
            status: try c.decode(TaskStatus.self, forKey: .status),
            priority: try c.decodeIfPresent(Int.self, forKey: .priority) ?? 0,
            arguments: try c.decodeIfPresent(RecordedArguments.self, forKey: .arguments),
            attempt: try c.decodeIfPresent(Int.self, forKey: .attempt) ?? 1,
            workerID: try c.decodeIfPresent(String.self, forKey: .workerID),
            traceID: try c.decodeIfPresent(String.self, forKey: .traceID),
            createdAt: try date(.createdAt) ?? Date(timeIntervalSince1970: 0),
            updatedAt: try date(.updatedAt) ?? Date(timeIntervalSince1970: 0),
            startedAt: try date(.startedAt),
            finishedAt: try date(.finishedAt),
            duration: try duration(.duration),
            result: try c.decodeIfPresent(JSONValue.self, forKey: .result),
            failure: try c.decodeIfPresent(TaskEvent.Failure.self, forKey: .failure),
            retryDelay: try duration(.retryDelay),
            deadLetterQueue: try c.decodeIfPresent(String.self, forKey: .deadLetterQueue),
            events: try c.decodeIfPresent([TaskEvent].self, forKey: .events) ?? [])
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(uuid, forKey: .uuid)
        try c.encode(taskName, forKey: .taskName)
        try c.encode(queue, forKey: .queue)
        try c.encode(status, forKey: .status)
        try c.encode(priority, forKey: .priority)
        try c.encodeIfPresent(arguments, forKey: .arguments)
        try c.encode(attempt, forKey: .attempt)
        try c.encodeIfPresent(workerID, forKey: .workerID)
        try c.encodeIfPresent(traceID, forKey: .traceID)
        try c.encode(createdAt.timeIntervalSince1970, forKey: .createdAt)
        try c.encode(updatedAt.timeIntervalSince1970, forKey: .updatedAt)
        try c.encodeIfPresent(startedAt?.timeIntervalSince1970, forKey: .startedAt)
        try c.encodeIfPresent(finishedAt?.timeIntervalSince1970, forKey: .finishedAt)
        try c.encodeIfPresent(duration.map(Seconds.double), forKey: .duration)
        try c.encodeIfPresent(result, forKey: .result)
        try c.encodeIfPresent(failure, forKey: .failure)
        try c.encodeIfPresent(retryDelay.map(Seconds.double), forKey: .retryDelay)
        try c.encodeIfPresent(deadLetterQueue, forKey: .deadLetterQueue)
        try c.encode(events, forKey: .events)
    }
}
