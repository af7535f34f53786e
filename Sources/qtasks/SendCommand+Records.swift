import CommandSupport
import Foundation
import Logging
import QTasks

/// `qtasks send --result-store`: a `sent` event for each task published,
/// so that `qtasks result UUID` finds it before a worker took it. A store
/// that cannot be opened or written only warns: the send goes on.
extension SendCommand {
    static let recordLogger = Logger(label: "qtasks.send")

    /// The store, when one is given and opens; nil otherwise (after a
    /// warning when it does not open).
    func openResultStore() async -> (any ResultStore)? {
        do {
            return try await results.open()
        } catch {
            Self.recordLogger.warning(
                "cannot open the result store; sending without recording",
                metadata: ["store": "\(results.redactedURL)", "error": "\(error)"])
            return nil
        }
    }

    /// Records the `sent` events of tasks just published (awaited; a
    /// failure warns).
    func recordSent(_ uuids: [String], in store: (any ResultStore)?, createdAt: Date) async {
        guard let store, !uuids.isEmpty else { return }
        let producer = SentEvents.producerID("qtasks-send")
        let events = uuids.map { uuid in
            SentEvents.event(
                uuid: uuid, taskName: task, queue: queue, priority: priority, producer: producer, createdAt: createdAt)
        }
        await SentEvents.record(events, in: store, logger: Self.recordLogger)
    }
}
