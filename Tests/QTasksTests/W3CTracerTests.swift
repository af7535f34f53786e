import Logging
import QTasks
import QTasksTesting
import QTasksW3CTracing
import Synchronization
import Testing
import Tracing

/// The example's W3C tracer: ids and headers as the W3C Trace Context
/// recommendation writes them, through a real worker on the memory broker.
@Suite struct W3CTracerTests {
    static let parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"

    @Test func childSpanKeepsTheTraceIDAndFlagsAndPassesTracestateOn() {
        let tracer = W3CTracer()
        var context = ServiceContext.topLevel
        let headers: [String: HeaderValue] = ["traceparent": .string(Self.parent), "tracestate": .string("congo=t61rcWkgMzE")]
        tracer.extract(headers, into: &context, using: HeaderExtractor())
        let span = tracer.startSpan("run add", context: context, ofKind: .consumer)
        var out: [String: HeaderValue] = [:]
        tracer.inject(span.context, into: &out, using: HeaderInjector())
        guard case .string(let traceparent)? = out["traceparent"] else {
            Issue.record("no traceparent in \(out)")
            return
        }
        let parts = traceparent.split(separator: "-").map(String.init)
        #expect(parts.count == 4)
        #expect(parts[0] == "00")
        #expect(parts[1] == "0af7651916cd43dd8448eb211c80319c")
        #expect(parts[2].count == 16 && parts[2] != "b7ad6b7169203331" && parts[2] != "0000000000000000")
        #expect(parts[3] == "01")
        #expect(out["tracestate"] == .string("congo=t61rcWkgMzE"))
    }

    @Test func malformedTraceparentStartsANewTrace() {
        let tracer = W3CTracer()
        for bad in ["", "00-xyz", "00-00000000000000000000000000000000-b7ad6b7169203331-01", "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"] {
            var context = ServiceContext.topLevel
            tracer.extract(["traceparent": .string(bad)], into: &context, using: HeaderExtractor())
            #expect(context.w3cTraceContext == nil, "\(bad)")
        }
        let root = tracer.startSpan("send add", context: .topLevel, ofKind: .producer)
        let other = tracer.startSpan("send add", context: .topLevel, ofKind: .producer)
        #expect(root.context.w3cTraceContext?.traceID != other.context.w3cTraceContext?.traceID)
        #expect(root.context.w3cTraceContext?.flags == .sampled)
    }

    /// A later version is read with version 00's layout (W3C Trace Context
    /// §3.2.4), also with fields after the four it knows; not when its
    /// 56th character is not a dash, and never version ff.
    @Test func aLaterVersionIsReadWithVersionZerosLayout() {
        let tracer = W3CTracer()
        let trace = "4bf92f3577b34da6a3ce929d0e0e4736"
        for header in ["01-\(trace)-00f067aa0ba902b7-01", "cc-\(trace)-00f067aa0ba902b7-01-what-comes-next"] {
            var context = ServiceContext.topLevel
            tracer.extract(["traceparent": .string(header)], into: &context, using: HeaderExtractor())
            #expect(context.w3cTraceContext?.traceID.description == trace, "\(header)")
        }
        for header in ["01-\(trace)-00f067aa0ba902b7-01x", "ff-\(trace)-00f067aa0ba902b7-01", "0G-\(trace)-00f067aa0ba902b7-01"] {
            var context = ServiceContext.topLevel
            tracer.extract(["traceparent": .string(header)], into: &context, using: HeaderExtractor())
            #expect(context.w3cTraceContext == nil, "\(header)")
        }
    }

    @Test func clientAndWorkerShareOneTraceAndLogLinesCarryIt() async throws {
        let ended = Mutex<[FinishedW3CSpan]>([])
        let tracer = W3CTracer { span in ended.withLock { $0.append(span) } }
        let lines = LogCapture()
        var configuration = quietConfiguration()
        configuration.tracer = tracer
        configuration.logger = Logger(label: "test") { _ in lines.handler(metadataProvider: W3CTraceLogging.metadataProvider) }
        let app = TaskApp()
        try app.register("add") { (a: Int, b: Int) in a + b }
        let headers = try await TestWorker.run(app, configuration: configuration) { client, _ in
            let handle = try await client.send("add", 2, 3)
            _ = try await handle.result(timeout: .seconds(30))
            return handle.resultHeaders
        }
        #expect(await eventually { ended.withLock { $0.count } == 2 })
        let spans = ended.withLock { $0 }
        let send = try #require(spans.first { $0.operationName == "send add" })
        let run = try #require(spans.first { $0.operationName == "run add" })
        #expect(run.traceContext.traceID == send.traceContext.traceID)
        #expect(run.parentSpanID == send.traceContext.spanID)
        #expect(headers?["traceparent"] == .string(run.traceContext.traceParentHeaderValue))
        let line = try #require(lines.entries.first { $0.message == "task succeeded" })
        #expect(line.metadata["trace_id"] == .string("\(run.traceContext.traceID)"))
        #expect(line.metadata["span_id"] == .string("\(run.traceContext.spanID)"))
        #expect(line.metadata["trace_flags"] == "1")
    }
}
