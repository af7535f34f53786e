import CommandSupport
import Foundation
import Logging
import QTasks

/// `qtasks send --result-store`: a `sent` event for each task published,
/// so that `qtasks result UUID` finds it before a worker took it. A store
/// that cannot be opened or written only warns: the send goes on.
extension SendCommand {
    /// The recorder for this run: nil without a store, or when the store
    /// does not open (after a warning).
    func openSentRecorder() async -> SentRecorder? {
        let logger = Logger(label: "qtasks.send")
        do {
            guard let store = try await results.open() else { return nil }
            return SentRecorder(store: store, task: task, queue: queue, priority: priority, logger: logger)
        } catch {
            logger.warning(
                "cannot open the result store; sending without recording",
                metadata: ["store": "\(results.redactedURL)", "error": "\(error)"])
            return nil
        }
    }
}

/// Records the `sent` events of the tasks one `qtasks send` published.
/// After a failed write it records no more (one warning, not one per batch
/// of `--count`, and no store timeout per batch).
final class SentRecorder {
    private let store: any ResultStore
    private let task: String
    private let queue: String
    private let priority: Int?
    private let logger: Logger
    private let producer = SentEvents.producerID("qtasks-send")
    private var failed = false

    init(store: any ResultStore, task: String, queue: String, priority: Int?, logger: Logger) {
        self.store = store
        self.task = task
        self.queue = queue
        self.priority = priority
        self.logger = logger
    }

    /// Records tasks just published (awaited; a failure warns).
    func record(_ uuids: [String], createdAt: Date) async {
        guard !failed, !uuids.isEmpty else { return }
        let events = uuids.map { uuid in
            SentEvents.event(
                uuid: uuid, taskName: task, queue: queue, priority: priority, producer: producer, createdAt: createdAt)
        }
        failed = !(await SentEvents.record(events, in: store, logger: logger))
    }

    func close() async {
        await store.close()
    }
}
