/// A value in an AMQP 0-9-1 field table (message headers, queue and consumer
/// arguments), with the wire types RabbitMQ uses (see RabbitMQ's "AMQP 0-9-1
/// errata": field types).
public enum AMQPFieldValue: Sendable, Hashable {
    case bool(Bool)
    case int8(Int8)
    case uint8(UInt8)
    case int16(Int16)
    case uint16(UInt16)
    case int32(Int32)
    case uint32(UInt32)
    case int64(Int64)
    case uint64(UInt64)
    case float(Float)
    case double(Double)
    /// AMQP decimal: `value` × 10^-`scale`.
    case decimal(scale: UInt8, value: UInt32)
    /// A long string (wire type `S`) that is valid UTF-8.
    case string(String)
    /// A byte array (wire type `x`), or a long string that is not UTF-8.
    case bytes([UInt8])
    case array([AMQPFieldValue])
    case table(AMQPTable)
    /// Seconds since 1970 (wire type `T`).
    case timestamp(UInt64)
    case void
}

/// An AMQP field table: header or argument names to values.
public typealias AMQPTable = [String: AMQPFieldValue]

extension AMQPFieldValue: ExpressibleByStringLiteral, ExpressibleByIntegerLiteral, ExpressibleByBooleanLiteral,
    ExpressibleByFloatLiteral
{
    public init(stringLiteral value: String) { self = .string(value) }
    /// Integer literals become `long` (`int32`) values when they fit, as
    /// RabbitMQ's own clients send `x-max-priority` and similar arguments.
    public init(integerLiteral value: Int64) {
        if let small = Int32(exactly: value) { self = .int32(small) } else { self = .int64(value) }
    }
    public init(booleanLiteral value: Bool) { self = .bool(value) }
    public init(floatLiteral value: Double) { self = .double(value) }
}
