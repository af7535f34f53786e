import Tracing

/// Writes a tracer's context (W3C `traceparent` and `tracestate` with
/// swift-otel's propagator) into a message's AMQP headers, as string
/// values, through `Tracer.inject(_:into:using:)`.
///
/// The worker and ``TaskClient`` use it for every message they publish;
/// use it too when publishing tasks through a ``Broker`` directly.
public struct HeaderInjector: Injector {
    public init() {}

    public func inject(_ value: String, forKey key: String, into headers: inout [String: HeaderValue]) {
        headers[key] = .string(value)
    }
}

/// Reads a tracer's context from a message's AMQP headers, through
/// `Tracer.extract(_:into:using:)`.
///
/// Accepts a long string or a byte array holding UTF-8 (some AMQP clients
/// write Python `bytes` or Java `byte[]` that way), under the exact key or,
/// failing that, the key in any letter case: HTTP-minded producers copy
/// `Traceparent` from a header map.
public struct HeaderExtractor: Extractor {
    public init() {}

    public func extract(key: String, from headers: [String: HeaderValue]) -> String? {
        if let value = headers[key] { return Self.text(value) }
        let lowercased = key.lowercased()
        guard let match = headers.first(where: { $0.key.lowercased() == lowercased }) else { return nil }
        return Self.text(match.value)
    }

    private static func text(_ value: HeaderValue) -> String? {
        switch value {
        case .string(let text): return text
        case .bytes(let bytes): return String(validating: bytes, as: UTF8.self)
        default: return nil
        }
    }
}
