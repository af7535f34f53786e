import InMemoryTracing
import Logging
import QTasks
import QTasksTesting
import Synchronization
import Testing
import Tracing

/// Spans of the client and the worker, and the trace context they carry
/// in message headers, with swift-distributed-tracing's in-memory tracer
/// passed explicitly (no global bootstrap).
@Suite struct TracingTests {
    struct Flaky: Error {}

    /// The in-memory tracer's header names for its trace and span ids.
    static let traceKey = InMemoryTracer.traceIDKey
    static let spanKey = InMemoryTracer.spanIDKey

    func configuration(_ tracer: InMemoryTracer?, retry: RetryPolicy = .never, logger: Logger = quietLogger) -> WorkerConfiguration {
        var configuration = quietConfiguration()
        configuration.tracer = tracer
        configuration.retryPolicy = retry
        configuration.logger = logger
        return configuration
    }

    /// Publishes a raw task as another service would, with a trace context
    /// of its own in the headers, the result going to "replies".
    func publish(_ body: String, to broker: MemoryBroker, headers: [String: HeaderValue] = [:]) async throws {
        broker.declareQueue("replies")
        let properties = MessageProperties(correlationID: "c1", replyTo: "replies", messageID: "m1", headers: headers)
        try await broker.publish(Message(body: Array(body.utf8), properties: properties), to: "default", mandatory: true)
    }

    func finishedSpan(_ tracer: InMemoryTracer, named name: String) async -> FinishedInMemorySpan? {
        _ = await eventually { tracer.finishedSpans.contains { $0.operationName == name } }
        return tracer.finishedSpans.first { $0.operationName == name }
    }

    @Test func sendAndRunAreParentAndChildInOneTrace() async throws {
        let tracer = InMemoryTracer()
        let app = TaskApp()
        try app.register("add") { (a: Int, b: Int) in a + b }
        let (uuid, queue, resultHeaders) = try await TestWorker.run(app, configuration: configuration(tracer)) { client, _ in
            let handle = try await client.send("add", 2, 3)
            #expect(handle.resultHeaders == nil)
            #expect(try await handle.result(timeout: .seconds(30)).returning == 5)
            return (handle.uuid, handle.queue, handle.resultHeaders)
        }
        let send = try #require(await finishedSpan(tracer, named: "send add"))
        let run = try #require(await finishedSpan(tracer, named: "run add"))
        #expect(send.kind == .producer)
        #expect(run.kind == .consumer)
        #expect(run.traceID == send.traceID)
        #expect(run.parentSpanID == send.spanID)
        #expect(send.parentSpanID == nil)

        #expect(send.attributes.get("messaging.system") == "rabbitmq")
        #expect(send.attributes.get("messaging.destination.name") == .string(queue))
        #expect(send.attributes.get("messaging.message.id") == .string(uuid))
        #expect(send.attributes.get("messaging.operation.type") == "send")
        #expect(send.attributes.get("qtasks.task.name") == "add")
        #expect(send.status == nil)

        #expect(run.attributes.get("messaging.system") == "rabbitmq")
        #expect(run.attributes.get("messaging.destination.name") == "default")
        #expect(run.attributes.get("messaging.message.id") == .string(uuid))
        #expect(run.attributes.get("messaging.message.conversation_id") == .string(uuid))
        #expect(run.attributes.get("messaging.operation.type") == "process")
        #expect(run.attributes.get("qtasks.task.name") == "add")
        #expect(run.attributes.get("qtasks.task.attempt") == .int64(1))
        #expect(run.attributes.get("qtasks.task.status") == "success")
        #expect(run.status == nil)
        #expect(run.errors.isEmpty)

        // The client can continue the trace from the result.
        var continued = ServiceContext.topLevel
        tracer.extract(try #require(resultHeaders), into: &continued, using: HeaderExtractor())
        #expect(continued.inMemorySpanContext?.traceID == send.traceID)
        #expect(continued.inMemorySpanContext?.spanID == run.spanID)
    }

    @Test func sendUnderACurrentSpanJoinsItsTrace() async throws {
        let tracer = InMemoryTracer()
        let broker = MemoryBroker()
        let client = TaskClient(broker: broker, logger: quietLogger, tracer: tracer)
        let outer = tracer.startSpan("checkout", ofKind: .server)
        try await ServiceContext.withValue(outer.context) {
            _ = try await client.send("add", 1, 2, queue: "orders")
        }
        outer.end()
        let send = try #require(tracer.finishedSpans.first { $0.operationName == "send add" })
        #expect(send.traceID == outer.context.inMemorySpanContext?.traceID)
        #expect(send.parentSpanID == outer.context.inMemorySpanContext?.spanID)
        // The message carries the send span, not the caller's.
        let headers = try #require(broker.messages(in: "orders").first).properties.headers
        #expect(headers[Self.traceKey] == .string(send.traceID))
        #expect(headers[Self.spanKey] == .string(send.spanID))
        await client.close()
        await broker.close()
    }

    @Test func failedSendIsRecordedOnTheSpan() async throws {
        let tracer = InMemoryTracer()
        let broker = MemoryBroker()
        let client = TaskClient(broker: broker, logger: quietLogger, tracer: tracer)
        try await broker.declareTaskQueue("default")
        broker.failPublishes(to: "default", with: BrokerError(.nacked, "refused by the test"))
        await #expect(throws: BrokerError.self) { try await client.send("add", 1, 2) }
        let send = try #require(tracer.finishedSpans.first { $0.operationName == "send add" })
        #expect(send.status?.code == .error)
        #expect(send.errors.count == 1)
        #expect(send.errors.first?.error is BrokerError)
        await client.close()
        await broker.close()
    }

    @Test func resultCarriesTheRunSpanOfAForeignProducersTrace() async throws {
        let tracer = InMemoryTracer()
        let app = TaskApp()
        try app.register("echo") { (text: String) in text }
        let broker = MemoryBroker()
        try await TestWorker.run(app, configuration: configuration(tracer), broker: broker) { _, broker in
            try await publish(
                #"{"uuid": "u1", "task_name": "echo", "args": ["hi"]}"#, to: broker,
                headers: [Self.traceKey: .string("trace-from-python"), Self.spanKey: .string("span-from-python")])
            #expect(await eventually { broker.readyCount(in: "replies") == 1 })
        }
        let run = try #require(await finishedSpan(tracer, named: "run echo"))
        #expect(run.traceID == "trace-from-python")
        #expect(run.parentSpanID == "span-from-python")
        #expect(run.attributes.get("messaging.message.conversation_id") == "c1")
        let reply = try #require(broker.messages(in: "replies").first)
        #expect(reply.properties.headers[Self.traceKey] == .string("trace-from-python"))
        #expect(reply.properties.headers[Self.spanKey] == .string(run.spanID))
        #expect(run.spanID != "span-from-python")
    }

    @Test func failureIsAnErrorSpanAndTheDeadLetterCarriesIt() async throws {
        let tracer = InMemoryTracer()
        let app = TaskApp()
        try app.register("fail") { () throws -> Int in throw Flaky() }
        try app.register("slow", options: TaskOptions(timeLimit: .milliseconds(50))) { () async throws -> Int in
            try await Task.sleep(for: .seconds(10))
            return 1
        }
        let broker = MemoryBroker()
        try await TestWorker.run(app, configuration: configuration(tracer), broker: broker) { _, broker in
            try await publish(#"{"task_name": "fail"}"#, to: broker)
            try await publish(#"{"task_name": "slow"}"#, to: broker)
            try await publish(#"{"task_name": "no_such_task"}"#, to: broker)
            #expect(await eventually { broker.readyCount(in: "default.dlq") == 3 })
        }
        let failed = try #require(await finishedSpan(tracer, named: "run fail"))
        #expect(failed.status?.code == .error)
        #expect(failed.status?.message == "Flaky: Flaky()")
        #expect(failed.errors.map { String(describing: type(of: $0.error)) } == ["Flaky"])
        #expect(failed.attributes.get("qtasks.task.status") == "error")

        let slow = try #require(await finishedSpan(tracer, named: "run slow"))
        #expect(slow.status?.code == .error)
        #expect(slow.errors.first?.error is TaskTimeLimitError)

        // Unregistered names stay out of span names (unbounded cardinality).
        let unknown = try #require(await finishedSpan(tracer, named: "run"))
        #expect(unknown.attributes.get("qtasks.task.name") == "no_such_task")
        #expect(unknown.status?.code == .error)
        #expect(unknown.errors.first?.error is TaskInputError)

        let dead = try #require(broker.messages(in: "default.dlq").first { String(decoding: $0.body, as: UTF8.self).contains("\"fail\"") })
        #expect(dead.properties.headers[Self.spanKey] == .string(failed.spanID))
    }

    @Test func retriesChainTheirAttemptsInOneTrace() async throws {
        let tracer = InMemoryTracer()
        let app = TaskApp()
        try app.register("second_time") { (context: TaskContext) -> String in
            if context.attempt < 3 { throw Flaky() }
            return "ok"
        }
        let policy = RetryPolicy(maxAttempts: 5, backoff: Backoff(initial: .milliseconds(10), jitter: 0))
        let broker = MemoryBroker()
        try await TestWorker.run(app, configuration: configuration(tracer, retry: policy), broker: broker) { _, broker in
            try await publish(#"{"task_name": "second_time"}"#, to: broker, headers: [Self.traceKey: .string("t1"), Self.spanKey: .string("s1")])
            #expect(await eventually { broker.readyCount(in: "replies") == 1 })
        }
        _ = await eventually { tracer.finishedSpans.count == 3 }
        let runs = tracer.finishedSpans.filter { $0.operationName == "run second_time" }
            .sorted { $0.startInstant.nanosecondsSinceEpoch < $1.startInstant.nanosecondsSinceEpoch }
        try #require(runs.count == 3)
        #expect(runs.map { $0.attributes.get("qtasks.task.attempt") } == [.int64(1), .int64(2), .int64(3)])
        #expect(runs.map { $0.attributes.get("qtasks.task.status") } == ["retry", "retry", "success"])
        #expect(runs.allSatisfy { $0.traceID == "t1" })
        #expect(runs[0].parentSpanID == "s1")
        #expect(runs[1].parentSpanID == runs[0].spanID)
        #expect(runs[2].parentSpanID == runs[1].spanID)
        #expect(runs[0].status?.code == .error)
        #expect(runs[2].status == nil)
        let reply = try #require(broker.messages(in: "replies").first)
        #expect(reply.properties.headers[Self.spanKey] == .string(runs[2].spanID))
    }

    @Test func handlerAndOutcomeLogLineRunInTheSpansContext() async throws {
        let tracer = InMemoryTracer()
        let lines = LogCapture()
        // What swift-otel's metadata provider does, with the in-memory ids.
        let provider = Logger.MetadataProvider {
            guard let span = ServiceContext.current?.inMemorySpanContext else { return [:] }
            return ["trace_id": .string(span.traceID), "span_id": .string(span.spanID)]
        }
        let logger = Logger(label: "test") { _ in lines.handler(metadataProvider: provider) }
        let seen = Mutex<String?>(nil)
        let app = TaskApp()
        try app.register("probe") { () -> Int in
            seen.withLock { $0 = ServiceContext.current?.inMemorySpanContext?.spanID }
            return 1
        }
        try await TestWorker.run(app, configuration: configuration(tracer, logger: logger)) { client, _ in
            _ = try await client.send("probe").result(timeout: .seconds(30))
        }
        let run = try #require(await finishedSpan(tracer, named: "run probe"))
        #expect(seen.withLock { $0 } == run.spanID)
        let line = try #require(lines.entries.first { $0.message == "task succeeded" })
        #expect(line.metadata["span_id"] == .string(run.spanID))
        #expect(line.metadata["trace_id"] == .string(run.traceID))
    }

    @Test func withoutATracerNothingIsAddedAndForeignContextPassesThrough() async throws {
        let app = TaskApp()
        try app.register("add") { (a: Int, b: Int) in a + b }
        try app.register("fail") { () throws -> Int in throw Flaky() }
        let broker = MemoryBroker()
        let client = TaskClient(broker: broker, logger: quietLogger)
        _ = try await client.send("add", 1, 2, queue: "plain")
        #expect(try #require(broker.messages(in: "plain").first).properties.headers.isEmpty)
        await client.close()

        let traceparent = HeaderValue.string("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
        try await TestWorker.run(app, configuration: configuration(nil), broker: broker) { client, broker in
            #expect(try await client.send("add", 2, 3).result(timeout: .seconds(30)).returning == 5)
            try await publish(#"{"task_name": "fail"}"#, to: broker, headers: ["traceparent": traceparent])
            #expect(await eventually { broker.readyCount(in: "default.dlq") == 1 })
        }
        #expect(try #require(broker.messages(in: "replies").first).properties.headers.isEmpty)
        #expect(try #require(broker.messages(in: "default.dlq").first).properties.headers["traceparent"] == traceparent)
    }

    @Test func headerCarriersReadBytesAndAnyLetterCase() {
        let extractor = HeaderExtractor()
        #expect(extractor.extract(key: "traceparent", from: ["traceparent": .bytes(Array("00-ab".utf8))]) == "00-ab")
        #expect(extractor.extract(key: "traceparent", from: ["Traceparent": .string("00-cd")]) == "00-cd")
        #expect(extractor.extract(key: "traceparent", from: ["traceparent": .int(1)]) == nil)
        #expect(extractor.extract(key: "tracestate", from: [:]) == nil)
        var headers: [String: HeaderValue] = ["x-qtasks-attempt": .int(2)]
        HeaderInjector().inject("v", forKey: "tracestate", into: &headers)
        #expect(headers == ["x-qtasks-attempt": .int(2), "tracestate": .string("v")])
    }
}

/// Keeps what was logged, with the metadata provider's fields merged in.
final class LogCapture: Sendable {
    struct Entry: Sendable {
        var message: String
        var metadata: Logger.Metadata
    }

    private let state = Mutex<[Entry]>([])

    var entries: [Entry] { state.withLock { $0 } }

    func handler(metadataProvider: Logger.MetadataProvider?) -> Handler {
        Handler(capture: self, metadataProvider: metadataProvider)
    }

    struct Handler: LogHandler {
        let capture: LogCapture
        var metadataProvider: Logger.MetadataProvider?
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .trace

        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }

        func log(event: LogEvent) {
            var fields = metadata
            if let provided = metadataProvider?.get() { fields.merge(provided) { _, new in new } }
            if let own = event.metadata { fields.merge(own) { _, new in new } }
            let entry = Entry(message: event.message.description, metadata: fields)
            capture.state.withLock { $0.append(entry) }
        }
    }
}
