import Logging
import Tracing

/// Log metadata from the current ``W3CTracer`` span.
public enum W3CTraceLogging {
    /// Adds `trace_id`, `span_id` (lowercase hex, as in `traceparent`) and
    /// `trace_flags` to every log line written while a span's
    /// `ServiceContext` is current: the keys and values of swift-otel's
    /// `OTel.makeLoggingMetadataProvider()`, so that log queries work the
    /// same with either tracer.
    public static let metadataProvider = Logger.MetadataProvider {
        guard let traceContext = ServiceContext.current?.w3cTraceContext else { return [:] }
        return [
            "trace_id": "\(traceContext.traceID)",
            "span_id": "\(traceContext.spanID)",
            "trace_flags": "\(traceContext.flags.rawValue)",
        ]
    }
}
