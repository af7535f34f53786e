import Synchronization
import Tracing
import W3CTraceContext

/// A tracer with W3C Trace Context ids and headers
/// (https://www.w3.org/TR/trace-context/) that exports nothing: enough to
/// carry one trace from producer to worker to result, and to put
/// `trace_id` and `span_id` in log lines (``W3CTraceLogging``), without a
/// collector.
///
/// A span's trace id and flags come from its parent (the `ServiceContext`
/// it starts in, or a `traceparent` header extracted into it); a span
/// without one starts a new sampled trace. `tracestate` is passed on
/// unchanged. Production workers bootstrap swift-otel instead, with an
/// OTLP exporter trait (docs/operations.md, "Tracing"); it writes the same
/// headers.
public struct W3CTracer: Tracer {
    /// Called with each span when it ends, on the task that ended it; nil
    /// (the default) drops them.
    let onEnd: (@Sendable (FinishedW3CSpan) -> Void)?

    public init(onEnd: (@Sendable (FinishedW3CSpan) -> Void)? = nil) {
        self.onEnd = onEnd
    }

    public func startSpan<Instant: TracerInstant>(
        _ operationName: String,
        context: @autoclosure () -> ServiceContext,
        ofKind kind: SpanKind,
        at instant: @autoclosure () -> Instant,
        function: String,
        file fileID: String,
        line: UInt
    ) -> W3CSpan {
        var context = context()
        let parent = context.w3cTraceContext
        let traceContext = TraceContext(
            traceID: parent?.traceID ?? .random(),
            spanID: .random(),
            flags: parent?.flags ?? .sampled,
            state: parent?.state ?? TraceState()
        )
        context.w3cTraceContext = traceContext
        return W3CSpan(
            operationName: operationName, kind: kind, context: context, parentSpanID: parent?.spanID,
            startNanoseconds: instant().nanosecondsSinceEpoch, onEnd: onEnd)
    }

    public func forceFlush() {}

    public func inject<Carrier, Inject: Injector>(
        _ context: ServiceContext, into carrier: inout Carrier, using injector: Inject
    ) where Inject.Carrier == Carrier {
        guard let traceContext = context.w3cTraceContext else { return }
        injector.inject(traceContext.traceParentHeaderValue, forKey: "traceparent", into: &carrier)
        if let state = traceContext.traceStateHeaderValue, !state.isEmpty {
            injector.inject(state, forKey: "tracestate", into: &carrier)
        }
    }

    /// Reads `traceparent` and `tracestate`; a malformed `traceparent` is
    /// ignored, as the W3C recommendation says (the span starts a new trace).
    public func extract<Carrier, Extract: Extractor>(
        _ carrier: Carrier, into context: inout ServiceContext, using extractor: Extract
    ) where Extract.Carrier == Carrier {
        guard let parent = extractor.extract(key: "traceparent", from: carrier),
            let traceContext = try? TraceContext(
                traceParentHeaderValue: Self.versionZeroLayout(of: parent),
                traceStateHeaderValue: extractor.extract(key: "tracestate", from: carrier))
        else { return }
        context.w3cTraceContext = traceContext
    }

    /// A `traceparent` of a later version read with version 00's layout,
    /// as W3C Trace Context §3.2.4 asks ("If a higher version is detected,
    /// the implementation SHOULD try to parse it" as 00 when its first 55
    /// characters fit and the 56th, if any, is a dash). Version `ff` is
    /// invalid and stays as it is, to be refused.
    static func versionZeroLayout(of header: String) -> String {
        let characters = Array(header.utf8)
        guard characters.count >= 55, characters.count == 55 || characters[55] == UInt8(ascii: "-") else { return header }
        let version = String(decoding: characters[0..<2], as: UTF8.self)
        // Lower-case hex only, as the recommendation writes versions.
        guard version != "00", version != "ff", version.allSatisfy({ "0123456789abcdef".contains($0) }) else { return header }
        return "00" + String(decoding: characters[2..<55], as: UTF8.self)
    }
}

/// A span of ``W3CTracer``.
public final class W3CSpan: Span {
    private struct State {
        var operationName: String
        var attributes: SpanAttributes = [:]
        var status: SpanStatus?
        var events: [SpanEvent] = []
        var links: [SpanLink] = []
        var errors: [any Error] = []
        var ended = false
    }

    public let context: ServiceContext
    public let kind: SpanKind
    private let parentSpanID: SpanID?
    private let startNanoseconds: UInt64
    private let onEnd: (@Sendable (FinishedW3CSpan) -> Void)?
    private let state: Mutex<State>

    init(
        operationName: String, kind: SpanKind, context: ServiceContext, parentSpanID: SpanID?,
        startNanoseconds: UInt64, onEnd: (@Sendable (FinishedW3CSpan) -> Void)?
    ) {
        self.context = context
        self.kind = kind
        self.parentSpanID = parentSpanID
        self.startNanoseconds = startNanoseconds
        self.onEnd = onEnd
        self.state = Mutex(State(operationName: operationName))
    }

    public var operationName: String {
        get { state.withLock { $0.operationName } }
        set { state.withLock { if !$0.ended { $0.operationName = newValue } } }
    }

    public var attributes: SpanAttributes {
        get { state.withLock { $0.attributes } }
        set { state.withLock { if !$0.ended { $0.attributes = newValue } } }
    }

    public var isRecording: Bool { state.withLock { !$0.ended } }

    public func setStatus(_ status: SpanStatus) {
        state.withLock { if !$0.ended { $0.status = status } }
    }

    public func addEvent(_ event: SpanEvent) {
        state.withLock { if !$0.ended { $0.events.append(event) } }
    }

    public func recordError<Instant: TracerInstant>(
        _ error: any Error, attributes: SpanAttributes, at instant: @autoclosure () -> Instant
    ) {
        var event = SpanEvent(name: "exception", at: instant(), attributes: attributes)
        event.attributes["exception.type"] = String(reflecting: type(of: error))
        event.attributes["exception.message"] = String(describing: error)
        state.withLock { state in
            guard !state.ended else { return }
            state.errors.append(error)
            state.events.append(event)
        }
    }

    public func addLink(_ link: SpanLink) {
        state.withLock { if !$0.ended { $0.links.append(link) } }
    }

    /// Ends the span; later calls do nothing.
    public func end<Instant: TracerInstant>(at instant: @autoclosure () -> Instant) {
        let finished = state.withLock { state -> FinishedW3CSpan? in
            guard !state.ended else { return nil }
            state.ended = true
            guard let traceContext = context.w3cTraceContext else { return nil }
            return FinishedW3CSpan(
                operationName: state.operationName, kind: kind, traceContext: traceContext, parentSpanID: parentSpanID,
                attributes: state.attributes, status: state.status, errors: state.errors.map { String(describing: $0) },
                startNanoseconds: startNanoseconds, endNanoseconds: instant().nanosecondsSinceEpoch)
        }
        if let finished { onEnd?(finished) }
    }
}

/// What a ``W3CSpan`` recorded, once ended.
public struct FinishedW3CSpan: Sendable {
    public var operationName: String
    public var kind: SpanKind
    public var traceContext: TraceContext
    /// Nil for the first span of a trace.
    public var parentSpanID: SpanID?
    public var attributes: SpanAttributes
    public var status: SpanStatus?
    /// The recorded errors, described.
    public var errors: [String]
    /// Nanoseconds since 1970.
    public var startNanoseconds: UInt64
    public var endNanoseconds: UInt64
}

private enum W3CTraceContextKey: ServiceContextKey {
    typealias Value = TraceContext
    static var nameOverride: String? { "w3c-trace-context" }
}

extension ServiceContext {
    /// The W3C trace context of the current span (``W3CTracer``).
    public var w3cTraceContext: TraceContext? {
        get { self[W3CTraceContextKey.self] }
        set { self[W3CTraceContextKey.self] = newValue }
    }
}
