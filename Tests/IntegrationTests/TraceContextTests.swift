import AMQP
import Foundation
import Logging
import QTasks
import QTasksRabbitMQ
import QTasksW3CTracing
import Synchronization
import Testing
import Tracing

/// W3C trace context (`traceparent`) through the real broker and a
/// `qtasks-example --tracing` worker process: from a foreign producer's
/// header and from the Swift client, to the result's headers and the
/// worker's JSON log line.
@Suite(.enabled(if: IntegrationEnvironment.enabled, "no RabbitMQ reachable at QTASKS_URL; deploy/test.sh starts one"),
       .timeLimit(.minutes(2)))
struct TraceContextTests {
    /// The parts of a version-00 `traceparent`.
    struct TraceParent: Equatable {
        var traceID: String
        var parentID: String
        var flags: String

        init?(_ text: String?) {
            guard let text else { return nil }
            let parts = text.split(separator: "-", omittingEmptySubsequences: false).map(String.init)
            guard parts.count == 4, parts[0] == "00", parts[1].count == 32, parts[2].count == 16 else { return nil }
            (traceID, parentID, flags) = (parts[1], parts[2], parts[3])
        }
    }

    static func randomHex(bytes: Int) -> String {
        (0..<bytes).map { _ in String(format: "%02x", UInt8.random(in: 0...255)) }.joined()
    }

    /// Starts `qtasks-example` with tracing (`QTASKS_TRACING=1`, or the
    /// flag) and JSON logs on this test's queue.
    func startTracingWorker(_ scope: TestScope, byEnvironment: Bool) async throws -> ChildProcess {
        var arguments = ["--url", IntegrationEnvironment.url, "--queue", scope.queue, "--log-format", "json"]
        if !byEnvironment { arguments.append("--tracing") }
        let worker = try scope.spawn(
            IntegrationEnvironment.workerExecutable, arguments, environment: byEnvironment ? ["QTASKS_TRACING": "1"] : [:])
        try await waitUntil("the worker to log 'worker started'", timeout: 30) {
            if let ended = worker.exitStatus {
                throw ChildProcessError("the worker ended before it started consuming (\(ended)):\n\(worker.stderrTail())")
            }
            return worker.standardErrorText.contains("worker started")
        }
        return worker
    }

    /// The worker's outcome line for `uuid`; the worker writes it after
    /// settling, so it may come a moment after the result.
    func outcomeLine(of worker: ChildProcess, uuid: String) async throws -> [String: Any] {
        var line: [String: Any]?
        try await waitUntil("the worker's log line for \(uuid)", timeout: 30) {
            line = worker.standardErrorText.split(separator: "\n").lazy
                .compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
                .first { $0["uuid"] as? String == uuid && $0["status"] as? String == "success" }
            return line != nil
        }
        return line!
    }

    @Test func foreignProducersTraceparentContinuesToTheResultAndTheLogLine() async throws {
        try await TestScope.run("trace-foreign") { scope in
            let worker = try await startTracingWorker(scope, byEnvironment: false)
            let traceID = Self.randomHex(bytes: 16)
            let parentID = Self.randomHex(bytes: 8)
            let uuid = UUID().uuidString.lowercased()
            try await scope.admin.publish(
                Array(#"{"uuid": "\#(uuid)", "task_name": "add", "args": [2, 3]}"#.utf8), to: scope.queue,
                properties: AMQPProperties(
                    contentType: "application/json", headers: ["traceparent": .string("00-\(traceID)-\(parentID)-01")],
                    correlationID: uuid, replyTo: scope.replyQueue, messageID: uuid))
            let reply = try await scope.admin.waitForMessage(in: scope.replyQueue, timeout: 20, "the result")
            #expect(try ResultMessage(reply).status == "success")
            let header: String? = if case .string(let text)? = reply.properties.headers?["traceparent"] { text } else { nil }
            let traceparent = try #require(TraceParent(header), "\(String(describing: reply.properties.headers))")
            #expect(traceparent.traceID == traceID)
            #expect(traceparent.parentID != parentID, "the result names the worker's span, not the producer's")
            #expect(traceparent.flags == "01")

            let line = try await outcomeLine(of: worker, uuid: uuid)
            #expect(line["trace_id"] as? String == traceID, "\(line)")
            #expect(line["span_id"] as? String == traceparent.parentID, "\(line)")
            await scope.stopGracefully(worker)
        }
    }

    @Test func swiftClientsSendSpanIsTheTraceOfTheResult() async throws {
        try await TestScope.run("trace-client") { scope in
            let worker = try await startTracingWorker(scope, byEnvironment: true)
            let ended = Mutex<[FinishedW3CSpan]>([])
            let tracer = W3CTracer { span in ended.withLock { $0.append(span) } }
            var logger = Logger(label: "qtasks.integration-tests.client")
            logger.logLevel = .warning
            let broker = try RabbitMQBroker(url: IntegrationEnvironment.url, logger: logger)
            let client = TaskClient(broker: broker, logger: logger, tracer: tracer)
            do {
                let handle = try await client.send("add", 20, 22, queue: scope.queue)
                let result = try await handle.result(timeout: .seconds(20))
                #expect(result.returning == 42)
                let send = try #require(ended.withLock { $0.first { $0.operationName == "send add" } })
                let headers = try #require(handle.resultHeaders)
                let header: String? = if case .string(let text)? = headers["traceparent"] { text } else { nil }
                let traceparent = try #require(TraceParent(header), "\(headers)")
                #expect(traceparent.traceID == "\(send.traceContext.traceID)")
                #expect(traceparent.parentID != "\(send.traceContext.spanID)")

                let line = try await outcomeLine(of: worker, uuid: handle.uuid)
                #expect(line["trace_id"] as? String == "\(send.traceContext.traceID)", "\(line)")
                #expect(line["span_id"] as? String == traceparent.parentID, "\(line)")
            } catch {
                await client.close()
                await broker.close()
                throw error
            }
            await client.close()
            await broker.close()
            await scope.stopGracefully(worker)
        }
    }
}
