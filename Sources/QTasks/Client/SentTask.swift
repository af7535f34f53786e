/// A task sent with ``TaskClient/sendWithoutReply(_:args:kwargs:queue:priority:)``:
/// what identifies it, and nothing to wait for.
///
/// Its message had no `reply_to`, so the worker publishes no result for it
/// (it still runs it, retries it and dead-letters it as usual); follow it
/// by its uuid in the worker's logs or traces.
public struct SentTask: Sendable, Hashable {
    /// The task's uuid (also its `message_id` and `correlation_id`).
    public let uuid: String
    /// The task name it was sent with.
    public let taskName: String
    /// The queue it was sent to.
    public let queue: String
}
