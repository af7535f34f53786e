import AMQP
import Foundation
import QTasks
import Testing

/// The real Dramatiq 2.2.1 (pinned in deploy/install-deps.sh, with its
/// pika-based `RabbitmqBroker`) as the producer: `actor.send(...)` and
/// `send_with_options(delay=...)`, unchanged, run by our worker process
/// under the message's `message_id`.
@Suite(.enabled(if: IntegrationEnvironment.enabled, "no RabbitMQ reachable at QTASKS_URL; deploy/test.sh starts one"),
       .timeLimit(.minutes(2)))
struct DramatiqProducerTests {
    /// Declares Dramatiq's queues (`<queue>`, `<queue>.DQ`, `<queue>.XQ`,
    /// with its own arguments) by sending, and prints the message ids.
    static let script = #"""
        import json, sys, time
        import dramatiq
        from dramatiq.brokers.rabbitmq import RabbitmqBroker

        url, queue = sys.argv[1:3]
        broker = RabbitmqBroker(url=url)
        dramatiq.set_broker(broker)

        @dramatiq.actor(actor_name="add", queue_name=queue)
        def add(a, b):
            return a + b

        @dramatiq.actor(actor_name="echo", queue_name=queue)
        def echo(*args, **kwargs):
            pass

        now = add.send(2, 3)
        echoed = echo.send_with_options(args=("Привет",), kwargs={"x": 1})
        sent = time.time()
        later = add.send_with_options(args=(4, 5), delay=6000)
        broker.close()
        print(json.dumps({"now": now.message_id, "echo": echoed.message_id, "later": later.message_id,
                          "sent": sent, "eta": later.options["eta"] / 1000}))
        """#

    @Test func dramatiqSendRunsOnOurWorkerAndItsDelayWaitsInTheBroker() async throws {
        try await TestScope.run("dramatiq") { scope in
            let delayQueue = scope.queue + ".DQ"
            for name in [delayQueue, scope.queue + ".XQ", delayQueue + ".dlq"] { scope.deleteAtEnd(name) }
            // Dramatiq first: it declares its queues with its own
            // arguments, which the worker then uses as they are.
            let out = try await PythonProducer.run(Self.script, [IntegrationEnvironment.url, scope.queue], importing: "dramatiq")
            let now = try #require(out["now"]?.stringValue, "\(out)")
            let later = try #require(out["later"]?.stringValue, "\(out)")
            let eta = try #require(out["eta"]?.doubleValue, "\(out)")
            #expect(try await scope.admin.queueInfo(delayQueue)?.messageCount == 1, "Dramatiq put the delayed message in \(delayQueue)")

            let worker = try await scope.startWorker(on: scope.queue, arguments: ["--dramatiq-delay-queues", "--log-format", "json"])
            try await waitUntil("add(2, 3) to run under Dramatiq's message_id", timeout: 20) {
                WorkerLog.success(of: now, in: worker.standardErrorText) != nil
            }
            let echoID = try #require(out["echo"]?.stringValue)
            try await waitUntil("echo to run", timeout: 20) { WorkerLog.success(of: echoID, in: worker.standardErrorText) != nil }
            // The delayed one left Dramatiq's delay queue at once, to wait
            // in ours: nothing unacked, nothing run before its eta.
            try await waitUntil("the delayed message moved out of \(delayQueue)", timeout: 20) {
                try await scope.admin.queueInfo(delayQueue)?.messageCount == 0
            }
            try await waitUntil("add(4, 5) to run after its eta", timeout: 30) {
                WorkerLog.success(of: later, in: worker.standardErrorText) != nil
            }
            // The success line was not there before the eta: checked by
            // the worker's own clock in its log (Unix seconds).
            let ranAt = try #require(WorkerLog.successTime(of: later, in: worker.standardErrorText), "\(worker.stderrTail())")
            #expect(ranAt >= eta - 0.05, "ran at \(ranAt), eta \(eta)")
            await scope.stopGracefully(worker)
            #expect(try await scope.admin.queueInfo(scope.queue)?.messageCount == 0)
        }
    }

    /// The other start order: the worker first declares `<queue>` and
    /// `<queue>.DQ` with Dramatiq's arguments, so Dramatiq's own
    /// declaration is equivalent and its send goes through.
    @Test func theWorkerMayStartBeforeDramatiq() async throws {
        try await TestScope.run("dramatiq-first") { scope in
            let delayQueue = scope.queue + ".DQ"
            for name in [delayQueue, scope.queue + ".XQ", delayQueue + ".dlq"] { scope.deleteAtEnd(name) }
            let worker = try await scope.startWorker(on: scope.queue, arguments: ["--dramatiq-delay-queues", "--log-format", "json"])
            let out = try await PythonProducer.run(Self.script, [IntegrationEnvironment.url, scope.queue], importing: "dramatiq")
            let now = try #require(out["now"]?.stringValue, "Dramatiq's send went through: \(out)")
            try await waitUntil("add(2, 3) to run", timeout: 20) { WorkerLog.success(of: now, in: worker.standardErrorText) != nil }
            let later = try #require(out["later"]?.stringValue)
            try await waitUntil("the delayed add(4, 5) to run", timeout: 30) { WorkerLog.success(of: later, in: worker.standardErrorText) != nil }
            await scope.stopGracefully(worker)
        }
    }
}

/// The `task succeeded` lines of a worker started with `--log-format json`.
enum WorkerLog {
    /// The success line of task `uuid`, as a JSON object.
    static func success(of uuid: String, in log: String) -> [String: Any]? {
        for line in log.split(separator: "\n") where line.contains(uuid) {
            guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                  object["message"] as? String == "task succeeded", object["uuid"] as? String == uuid
            else { continue }
            return object
        }
        return nil
    }

    /// When task `uuid` succeeded, Unix seconds, by the worker's clock
    /// (the line's `timestamp`, ISO 8601 with milliseconds).
    static func successTime(of uuid: String, in log: String) -> Double? {
        guard let stamp = success(of: uuid, in: log)?["timestamp"] as? String else { return nil }
        return (try? Date.ISO8601FormatStyle(includingFractionalSeconds: true).parse(stamp))?.timeIntervalSince1970
    }
}
