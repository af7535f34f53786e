/// A ``WorkerConfiguration`` value the worker cannot run with, found by
/// ``WorkerConfiguration/validate()`` before any connection or declaration.
public struct WorkerConfigurationError: Error, Sendable, Hashable, CustomStringConvertible {
    public var message: String

    public init(_ message: String) {
        self.message = message
    }

    public var description: String { message }
}

extension WorkerConfiguration {
    /// The most unacknowledged deliveries one consumer can be allowed:
    /// AMQP's `basic.qos` prefetch count is 16 bits.
    public static let longestPrefetch = 65_535

    /// Checks what the broker would refuse or silently cut, so that
    /// ``Worker/run()`` fails at once, before it declares anything:
    ///
    /// - at least one queue, each a valid task queue name
    ///   (``QueueNaming/validateTaskQueue(_:what:)``: not empty, at most
    ///   ``QueueNaming/longestTaskQueueName`` bytes, no `amq.` prefix);
    /// - ``prefetch``, when set, and each ``queueConcurrency`` value in
    ///   1...65535 (``longestPrefetch``);
    /// - ``maxMessageBytes`` at least 1;
    /// - ``consumerTimeout``, when set, at least 0.1 second, and
    ///   ``consumerTimeoutMargin`` not negative.
    ///
    /// ``concurrency`` below 1 still counts as 1, and the default prefetch
    /// (4 × concurrency) is at most 65535: ``effectivePrefetch`` says
    /// which, and is what the broker gets.
    ///
    /// - Throws: ``QueueNameError`` for a queue name,
    ///   ``WorkerConfigurationError`` for the rest.
    public func validate() throws {
        guard !queues.isEmpty else { throw WorkerConfigurationError("a worker needs at least one queue") }
        for queue in queues {
            try QueueNaming.validateTaskQueue(queue)
        }
        if let prefetch, !(1...Self.longestPrefetch).contains(prefetch) {
            throw WorkerConfigurationError("prefetch must be 1...\(Self.longestPrefetch) (AMQP's limit), not \(prefetch)")
        }
        for (queue, limit) in queueConcurrency.sorted(by: { $0.key < $1.key }) {
            guard (1...Self.longestPrefetch).contains(limit) else {
                throw WorkerConfigurationError(
                    "queueConcurrency of '\(queue)' must be 1...\(Self.longestPrefetch) (it is also its prefetch), not \(limit)")
            }
        }
        guard maxMessageBytes >= 1 else {
            throw WorkerConfigurationError("maxMessageBytes must be at least 1, not \(maxMessageBytes)")
        }
        if let consumerTimeout, consumerTimeout < .milliseconds(100) {
            // Shorter, every delivery would be past its deadline before it
            // started, and requeued for ever. (RabbitMQ checks its timeout
            // once per channel tick, 60 s by default: real values are
            // minutes; tests on the in-memory broker use fractions of a
            // second.)
            throw WorkerConfigurationError(
                "consumerTimeout must be at least 0.1 second (RabbitMQ's consumer_timeout; nil: not set), not \(consumerTimeout)")
        }
        if let consumerTimeoutMargin, consumerTimeoutMargin < .zero {
            throw WorkerConfigurationError("consumerTimeoutMargin must be 0 or more, not \(consumerTimeoutMargin)")
        }
        if deduplicatesTasks, workflowStore == nil {
            throw WorkerConfigurationError("deduplicatesTasks needs a workflowStore (a result store) to record which uuids ran")
        }
    }
}
