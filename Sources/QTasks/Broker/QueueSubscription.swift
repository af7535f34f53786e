/// One queue a consumer takes deliveries from, with its own prefetch: the
/// most unacknowledged deliveries of that queue the broker hands out at
/// once.
public struct QueueSubscription: Sendable, Hashable {
    public var queue: String
    /// At least 1.
    public var prefetch: Int

    public init(queue: String, prefetch: Int) {
        self.queue = queue
        self.prefetch = max(1, prefetch)
    }
}
