/// A message whose method frame (`basic.deliver`, `basic.return`,
/// `basic.get-ok`) has arrived and whose content header and body frames are
/// still coming in, on one channel.
///
/// Frames of other channels may arrive in between (AMQP only keeps one
/// channel's content frames together), so ``ContentAssemblyStateMachine``
/// keeps one of these per channel. A body over `limit` is dropped frame by
/// frame: memory stays bounded whatever a producer sends.
struct IncomingContent: Hashable {
    /// The method frame the content belongs to, copied out of rabbitmq-c.
    enum Purpose: Hashable {
        case deliver(consumerTag: String, deliveryTag: UInt64, redelivered: Bool, exchange: String, routingKey: String)
        case returned(code: UInt16, text: String, exchange: String, routingKey: String)
        case get(deliveryTag: UInt64, redelivered: Bool, exchange: String, routingKey: String)
    }

    let purpose: Purpose
    /// Bodies over this many bytes are dropped; nil: no limit.
    let limit: Int?
    var properties: AMQPProperties?
    var bodySize: UInt64 = 0
    var received: UInt64 = 0
    var body: [UInt8] = []
    var discard = false

    init(_ purpose: Purpose, limit: Int?) {
        self.purpose = purpose
        self.limit = limit
    }

    var hasHeader: Bool { properties != nil }
    var isComplete: Bool { properties != nil && received == bodySize }

    /// Takes the content header; false when it is unusable.
    mutating func header(bodySize: UInt64, properties: AMQPProperties) -> Bool {
        guard bodySize <= UInt64(Int.max) else { return false }
        self.bodySize = bodySize
        self.properties = properties
        discard = limit.map { bodySize > UInt64(max(0, $0)) } ?? false
        if !discard { body.reserveCapacity(Int(bodySize)) }
        return true
    }

    /// Takes one body frame; false when it overruns the announced size.
    mutating func append(_ fragment: UnsafeRawBufferPointer) -> Bool {
        received += UInt64(fragment.count)
        guard received <= bodySize else { return false }
        if !discard { body.append(contentsOf: fragment) }
        return true
    }
}
