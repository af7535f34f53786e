import CommandSupport
import Logging
import QTasks

/// Records the scheduler's `sent` events in the result store, off the
/// scheduling loop: ``submit(_:)`` returns at once (the scheduler's
/// submission callback is synchronous), ``run()`` writes what is waiting,
/// a failure is a warning (the task was sent; its record is a convenience).
/// At most 10,000 events wait; past that the oldest are dropped.
final class SentEventWriter: Sendable {
    private let store: any ResultStore
    private let logger: Logger
    private let events: AsyncStream<TaskEvent>
    private let continuation: AsyncStream<TaskEvent>.Continuation

    init(store: any ResultStore, logger: Logger) {
        self.store = store
        self.logger = logger
        (events, continuation) = AsyncStream.makeStream(bufferingPolicy: .bufferingNewest(10_000))
    }

    /// Queues an event.
    func submit(_ event: TaskEvent) {
        continuation.yield(event)
    }

    /// Writes events as they come, until ``finish()`` and the last is written.
    func run() async {
        for await event in events {
            await SentEvents.record([event], in: store, logger: logger)
        }
    }

    /// Ends ``run()`` once the events queued so far are written.
    func finish() {
        continuation.finish()
    }
}
