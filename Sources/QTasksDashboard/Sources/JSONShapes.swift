import Foundation
import QTasks

/// The JSON shapes of docs/dashboard.md ("JSON API") that more than one endpoint
/// uses.
enum JSONShapes {
    /// A row of `/api/tasks` and of `/api/live`'s `recent`.
    static func taskSummary(_ record: TaskRecord) -> JSONValue {
        .object([
            "uuid": .string(record.uuid), "task_name": .string(record.taskName), "queue": .string(record.queue),
            "status": .string(record.status.rawValue), "attempt": .int(Int64(record.attempt)),
            "worker_id": .optional(record.workerID), "created_at": .time(record.createdAt),
            "updated_at": .time(record.updatedAt), "duration": .seconds(record.duration),
            "error": .optional(record.failure.map { $0.message.isEmpty ? $0.type : "\($0.type): \($0.message)" }),
        ])
    }

    /// Whether a worker has missed heartbeats: more than two intervals
    /// since its last one (a store forgets it after three, its
    /// time-to-live, ``TaskEventRecording/heartbeatTimeToLive``).
    static func isStale(_ heartbeat: WorkerHeartbeat, now: Date) -> Bool {
        let timeToLive = heartbeat.expiresAt.timeIntervalSince(heartbeat.sentAt)
        return now.timeIntervalSince(heartbeat.sentAt) > timeToLive * 2 / 3
    }

    /// A row of `/api/workers`.
    static func worker(_ heartbeat: WorkerHeartbeat, now: Date) -> JSONValue {
        .object([
            "worker_id": .string(heartbeat.workerID), "host": .string(heartbeat.host), "pid": .int(Int64(heartbeat.pid)),
            "queues": .array(heartbeat.queues.map(JSONValue.string)), "concurrency": .int(Int64(heartbeat.concurrency)),
            "in_flight": .int(Int64(heartbeat.inFlight)), "processed": .int(Int64(heartbeat.processed)),
            "failed": .int(Int64(heartbeat.failed)), "retried": .int(Int64(heartbeat.retried)),
            "version": .string(heartbeat.version), "started_at": .time(heartbeat.startedAt),
            "last_heartbeat": .time(heartbeat.sentAt), "expires_at": .time(heartbeat.expiresAt),
            "uptime": .double(max(0, now.timeIntervalSince(heartbeat.startedAt))),
            "status": .string(isStale(heartbeat, now: now) ? "stale" : "online"),
        ])
    }

    /// `attempts` of `/api/tasks/<uuid>`: the record's events grouped by
    /// attempt, in order.
    static func attempts(of record: TaskRecord) -> JSONValue {
        struct Attempt {
            var number: Int
            var workerID: String?
            var receivedAt: Date?
            var startedAt: Date?
            var endedAt: Date?
            var outcome: String?
            var duration: Duration?
            var retryDelay: Duration?
            var error: String?
        }
        var attempts: [Int: Attempt] = [:]
        for event in record.events where event.kind != .sent {
            var attempt = attempts[event.attempt] ?? Attempt(number: event.attempt)
            if !event.workerID.isEmpty { attempt.workerID = event.workerID }
            switch event.kind {
            case .received: attempt.receivedAt = event.timestamp
            case .started: attempt.startedAt = event.timestamp
            default:
                attempt.endedAt = event.timestamp
                attempt.outcome = event.kind.rawValue
                attempt.duration = event.duration ?? attempt.duration
                attempt.retryDelay = event.retryDelay ?? attempt.retryDelay
                if let failure = event.failure {
                    attempt.error = failure.message.isEmpty ? failure.type : "\(failure.type): \(failure.message)"
                }
            }
            attempts[event.attempt] = attempt
        }
        return .array(
            attempts.values.sorted { $0.number < $1.number }.map { attempt in
                .object([
                    "attempt": .int(Int64(attempt.number)), "worker_id": .optional(attempt.workerID),
                    "received_at": .time(attempt.receivedAt), "started_at": .time(attempt.startedAt),
                    "ended_at": .time(attempt.endedAt), "outcome": .optional(attempt.outcome),
                    "duration": .seconds(attempt.duration), "retry_delay": .seconds(attempt.retryDelay),
                    "error": .optional(attempt.error),
                ])
            })
    }
}
