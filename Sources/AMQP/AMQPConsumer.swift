/// The deliveries of one consumer (`basic.consume`), in order.
///
/// The sequence ends normally when the consumer is cancelled, and with an
/// ``AMQPError`` when its channel or connection closes or the broker cancels
/// it (for example because its queue was deleted). The broker sends at most
/// the channel's prefetch count of unacknowledged deliveries, which bounds
/// what this sequence buffers.
public struct AMQPConsumer: AsyncSequence, Sendable {
    public typealias Element = AMQPDelivery

    /// The consumer tag the broker knows this consumer by.
    public let tag: String
    let stream: AsyncThrowingStream<AMQPDelivery, any Error>

    public func makeAsyncIterator() -> AsyncThrowingStream<AMQPDelivery, any Error>.AsyncIterator {
        stream.makeAsyncIterator()
    }
}

/// What a consumer handler receives (see
/// ``AMQPChannel/consume(queue:tag:noAck:exclusive:arguments:maxBodySize:handler:)``).
public enum AMQPConsumerEvent: Sendable {
    /// A message for this consumer.
    case delivery(AMQPDelivery)
    /// The consumer ended: `nil` after a cancel from this side, the error
    /// when its channel or connection closed or the broker cancelled it.
    case ended(AMQPError?)
}
