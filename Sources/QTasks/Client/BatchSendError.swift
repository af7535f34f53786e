/// A batch send that stopped part way: thrown by
/// ``TaskClient/send(batch:)`` and its typed and reply-less forms.
///
/// The tasks in ``sent`` were published and confirmed (they will run);
/// ``unsent`` were not published, or their publish failed for good (a
/// publish that failed after reaching the broker may still run: at-least-once).
public struct BatchSendError<Output: Decodable & Sendable>: Error, CustomStringConvertible {
    /// The tasks that were sent, in the batch's order.
    public var sent: [SentTask]
    /// Their handles, when the batch expected results (else empty):
    /// their results still arrive.
    public var handles: [TaskHandle<Output>]
    /// How many tasks of the batch were not sent.
    public var unsent: Int
    /// The first error, as a single send would have thrown it.
    public var error: any Error

    public var description: String {
        "\(sent.count) tasks sent, \(unsent) not sent: \(error)"
    }
}
