import ArgumentParser
import Foundation
import Logging
import QTasksW3CTracing

/// `--tracing`: the worker's tracer and what it does with ended spans.
enum ExampleTracing {
    /// The flag, else `QTASKS_TRACING`: `1`, `true`, `yes`, `on` enable it;
    /// `0`, `false`, `no`, `off` or empty leave it off.
    /// - Throws: `ValidationError` for any other value, rather than reading
    ///   a typo as "off".
    static func isEnabled(flag: Bool, environment: [String: String] = ProcessInfo.processInfo.environment) throws -> Bool {
        if flag { return true }
        guard let value = environment["QTASKS_TRACING"]?.lowercased() else { return false }
        switch value {
        case "1", "true", "yes", "on": return true
        case "", "0", "false", "no", "off": return false
        default: throw ValidationError("QTASKS_TRACING must be 1, true, yes, on, 0, false, no, off or empty, not '\(value)'")
        }
    }

    /// A W3C tracer that logs each ended span at `debug` (there is no
    /// collector to send it to: see docs/operations.md, "Tracing", for
    /// exporting with swift-otel).
    static func makeTracer() -> W3CTracer {
        let logger = Logger(label: "qtasks.tracing")
        return W3CTracer { span in
            logger.debug(
                "span ended",
                metadata: [
                    "span_name": .string(span.operationName),
                    "trace_id": "\(span.traceContext.traceID)",
                    "span_id": "\(span.traceContext.spanID)",
                    "parent_span_id": "\(span.parentSpanID.map { "\($0)" } ?? "")",
                    "duration_ms": .stringConvertible(Double(span.endNanoseconds &- span.startNanoseconds) / 1e6),
                    "error": .stringConvertible(span.status?.code == .error),
                ])
        }
    }
}
