/// A task's result was too large to deliver: over the worker's
/// ``WorkerConfiguration/maxResultBytes``, or refused by the broker as
/// larger than its maximum message size (RabbitMQ's `max_message_size`).
///
/// The worker then publishes an `error` result with this error instead
/// and dead-letters the delivery: the task is not run again (it would
/// produce the same result). In the result:
/// `"ResultTooLargeError: result of 20971650 bytes exceeds the limit of 8388608 bytes"`.
public struct ResultTooLargeError: Error, Sendable, Hashable, CustomStringConvertible {
    /// Whose limit the result went over.
    public enum Limit: Sendable, Hashable {
        /// The worker's ``WorkerConfiguration/maxResultBytes``.
        case worker(Int)
        /// The broker's maximum message size, in bytes when the broker
        /// said (RabbitMQ names it in its refusal).
        case broker(Int?)
    }

    /// The size of the result message, in bytes.
    public var size: Int
    /// The limit it went over.
    public var limit: Limit
    /// The broker's own words for a refusal, if any.
    public var brokerText: String?

    public init(size: Int, limit: Limit, brokerText: String? = nil) {
        self.size = size
        self.limit = limit
        self.brokerText = brokerText
    }

    public var description: String {
        switch limit {
        case .worker(let bytes):
            return "result of \(size) bytes exceeds the limit of \(bytes) bytes"
        case .broker(let bytes?):
            return "result of \(size) bytes exceeds the broker's maximum message size of \(bytes) bytes"
        case .broker(nil):
            return "result of \(size) bytes was refused by the broker as too large" + (brokerText.map { " (\($0))" } ?? "")
        }
    }
}
