import AMQP
import QTasks

/// Conversions between the core's broker-neutral message model and AMQP's.
enum MessageMapping {
    static func amqpProperties(_ p: MessageProperties) -> AMQPProperties {
        AMQPProperties(
            contentType: p.contentType, contentEncoding: p.contentEncoding,
            headers: p.headers.isEmpty ? nil : p.headers.mapValues(fieldValue),
            deliveryMode: p.persistent ? AMQPProperties.persistentDeliveryMode : AMQPProperties.transientDeliveryMode,
            priority: p.priority, correlationID: p.correlationID, replyTo: p.replyTo, expiration: p.expiration,
            messageID: p.messageID, timestamp: p.timestamp, type: p.type, appID: p.appID)
    }

    static func messageProperties(_ p: AMQPProperties) -> MessageProperties {
        MessageProperties(
            contentType: p.contentType, contentEncoding: p.contentEncoding,
            persistent: p.deliveryMode == AMQPProperties.persistentDeliveryMode, priority: p.priority,
            correlationID: p.correlationID, replyTo: p.replyTo, expiration: p.expiration, messageID: p.messageID,
            timestamp: p.timestamp, type: p.type, appID: p.appID,
            headers: p.headers?.mapValues(headerValue) ?? [:])
    }

    static func fieldValue(_ value: HeaderValue) -> AMQPFieldValue {
        switch value {
        case .bool(let v): return .bool(v)
        case .int(let v): return .int64(v)
        case .double(let v): return .double(v)
        case .string(let v): return .string(v)
        case .bytes(let v): return .bytes(v)
        case .array(let v): return .array(v.map(fieldValue))
        case .table(let v): return .table(v.mapValues(fieldValue))
        case .void: return .void
        }
    }

    static func headerValue(_ value: AMQPFieldValue) -> HeaderValue {
        switch value {
        case .bool(let v): return .bool(v)
        case .int8(let v): return .int(Int64(v))
        case .uint8(let v): return .int(Int64(v))
        case .int16(let v): return .int(Int64(v))
        case .uint16(let v): return .int(Int64(v))
        case .int32(let v): return .int(Int64(v))
        case .uint32(let v): return .int(Int64(v))
        case .int64(let v): return .int(v)
        case .uint64(let v): return Int64(exactly: v).map(HeaderValue.int) ?? .string(String(v))
        case .float(let v): return .double(Double(v))
        case .double(let v): return .double(v)
        case .decimal(let scale, let v): return .string(decimalText(scale: scale, value: v))
        case .string(let v): return .string(v)
        case .bytes(let v): return .bytes(v)
        case .array(let v): return .array(v.map(headerValue))
        case .table(let v): return .table(v.mapValues(headerValue))
        case .timestamp(let v): return Int64(exactly: v).map(HeaderValue.int) ?? .string(String(v))
        case .void: return .void
        }
    }

    private static func decimalText(scale: UInt8, value: UInt32) -> String {
        guard scale > 0 else { return String(value) }
        var digits = String(value)
        while digits.count <= Int(scale) { digits = "0" + digits }
        digits.insert(".", at: digits.index(digits.endIndex, offsetBy: -Int(scale)))
        return digits
    }

    static func brokerError(_ error: any Error) -> any Error {
        guard let error = error as? AMQPError else { return error }
        let code: BrokerError.Code
        switch error.code {
        case .connectionFailed, .authenticationFailed: code = .connectionFailed
        case .connectionClosed, .heartbeatTimeout, .protocolError: code = .connectionLost
        case .publishReturned: code = .unroutable
        case .publishNacked: code = .nacked
        case .staleDeliveryTag: code = .staleDelivery
        case .timeout: code = .timeout
        default: code = .refused
        }
        return BrokerError(code, error.message, replyCode: error.replyCode, replyText: error.replyText)
    }

    /// A broker's refusal of a message as too large: RabbitMQ closes the
    /// channel with `406 PRECONDITION_FAILED - message size N is larger
    /// than configured max size M` (3.x and 4.x; "max size" without
    /// "configured" at its built-in maximum).
    struct OversizeRefusal: Equatable {
        /// The size of the refused message.
        var size: Int
        /// The broker's `max_message_size`.
        var limit: Int

        init?(_ error: AMQPError) {
            guard error.code == .channelClosed || error.code == .connectionClosed, error.replyCode == 406,
                let text = error.replyText
            else { return nil }
            self.init(replyText: text)
        }

        init?(replyText text: String) {
            guard let match = text.firstMatch(of: Self.pattern),
                let size = Int(match.output.1), let limit = Int(match.output.2)
            else { return nil }
            self.size = size
            self.limit = limit
        }

        nonisolated(unsafe) private static let pattern = #/message size (\d+) is larger than (?:configured )?max size (\d+)/#

        /// Whether a message of `bodySize` bytes is the one refused (or
        /// would be): over the limit, or of the size the broker named.
        func refuses(bodySize: Int) -> Bool {
            bodySize > limit || bodySize == size
        }
    }

    /// `.messageTooLarge` for a message of `size` bytes over `limit`.
    static func tooLarge(size: Int, limit: Int, replyText: String?) -> BrokerError {
        BrokerError(
            .messageTooLarge,
            "the message of \(size) bytes is larger than the broker's maximum message size of \(limit) bytes",
            replyCode: replyText == nil ? nil : 406, replyText: replyText, maxMessageBytes: limit)
    }
}

