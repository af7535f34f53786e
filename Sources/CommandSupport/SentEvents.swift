import Foundation
import Logging
import QTasks

/// The `sent` events a producer records in a result store
/// (``TaskEvent/Kind/sent``): `qtasks send` and `qtasks-scheduler` write
/// one for each task they published, so that `qtasks result` finds the
/// task (status `new`) before a worker took it.
///
/// They carry no arguments: only the worker knows which tasks' arguments
/// are secret (``TaskOptions/recordsArguments``), and it records them
/// under that rule when it receives the task.
public enum SentEvents {
    /// The event for one published task.
    ///
    /// - Parameters:
    ///   - producer: who sent it (``producerID(_:)``), in the event's
    ///     `worker_id`.
    ///   - createdAt: about when the message was made.
    public static func event(
        uuid: String, taskName: String, queue: String, priority: Int?, producer: String, createdAt: Date
    ) -> TaskEvent {
        TaskEvent(
            kind: .sent, uuid: uuid, taskName: taskName, queue: queue, attempt: 1, workerID: producer,
            timestamp: Date(), createdAt: createdAt, priority: priority)
    }

    /// `<program>.<host>.<pid>`: a producer in events, as a worker id
    /// names a worker.
    public static func producerID(_ program: String) -> String {
        "\(program).\(ProcessInfo.processInfo.hostName).\(ProcessInfo.processInfo.processIdentifier)"
    }

    /// Records `events` in `store` in batches of at most 5,000; a failure
    /// is logged as a warning (naming how many were not recorded), never
    /// thrown: the tasks were sent, the record is a convenience.
    ///
    /// - Returns: whether every event was recorded.
    @discardableResult
    public static func record(_ events: [TaskEvent], in store: any ResultStore, logger: Logger) async -> Bool {
        var start = 0
        while start < events.count {
            let end = min(start + 5_000, events.count)
            do {
                try await store.record(Array(events[start..<end]))
            } catch {
                logger.warning(
                    "cannot record sent tasks in the result store; they were sent all the same",
                    metadata: [
                        "store": "\(store)", "not_recorded": .stringConvertible(events.count - start),
                        "error": "\(error)",
                    ])
                return false
            }
            start = end
        }
        return true
    }
}
