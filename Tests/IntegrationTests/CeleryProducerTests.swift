import AMQP
import Foundation
import QTasks
import Testing

/// The real Celery (pinned in deploy/install-deps.sh) as the producer:
/// `send_task` with the `rpc://` result backend against our worker process.
@Suite(.enabled(if: IntegrationEnvironment.enabled, "no RabbitMQ reachable at QTASKS_URL; deploy/test.sh starts one"),
       .timeLimit(.minutes(2)))
struct CeleryProducerTests {
    /// Sends tasks, waits for each with `.get(timeout=5)`, prints what came
    /// back (values, or the exception's class, module and message).
    static let script = #"""
        import json, sys
        from celery import Celery

        url, queue = sys.argv[1:3]
        app = Celery("producer", broker=url, backend="rpc://")
        app.conf.task_default_queue = queue
        app.conf.broker_connection_retry_on_startup = False

        def outcome(result):
            try:
                return {"value": result.get(timeout=5), "state": result.state}
            except Exception as error:
                return {"error": type(error).__name__, "module": type(error).__module__,
                        "message": str(error), "state": result.state, "traceback": result.traceback}

        out = {}
        out["add"] = outcome(app.send_task("add", args=[2, 3]))
        out["add_kwargs"] = outcome(app.send_task("add", kwargs={"a": 2.5, "b": 4}))
        out["echo"] = outcome(app.send_task("echo", args=["Привет", [1, {"x": None}]], kwargs={"город": "Москва 🏙"}))
        out["fail"] = outcome(app.send_task("fail", kwargs={"message": "сломалось: no luck"}))
        out["unknown"] = outcome(app.send_task("no_such_task", args=[1]))
        out["bad_args"] = outcome(app.send_task("add", args=[1, 2, 3]))
        print(json.dumps(out, ensure_ascii=False))
        """#

    @Test func celeryClientGetsResultsAndErrorsThroughTheRPCBackend() async throws {
        try await TestScope.run("celery") { scope in
            // Worker first: it declares every task queue plain, as Celery
            // does, so Celery's own declaration matches it with no flag
            // (before, this needed --plain-queue; without it Celery failed
            // with 406 inequivalent arg 'x-dead-letter-exchange').
            let worker = try await scope.startWorker(on: scope.queue, arguments: [])
            let out = try await PythonProducer.run(Self.script, [IntegrationEnvironment.url, scope.queue], importing: "celery")

            #expect(out["add"]?["value"] == 5, "\(out)")
            #expect(out["add"]?["state"] == "SUCCESS")
            #expect(out["add_kwargs"]?["value"] == 6.5, "\(out)")
            #expect(out["echo"]?["value"] == ["args": ["Привет", [1, ["x": .null]]], "kwargs": ["город": "Москва 🏙"]], "\(out)")

            // Our error's type and message, raised on the Celery side.
            let fail = try #require(out["fail"])
            #expect(fail["error"] == "ExampleError", "\(fail)")
            #expect(fail["message"] == "сломалось: no luck", "\(fail)")
            #expect(fail["state"] == "FAILURE")
            #expect(fail["traceback"] == "ExampleError: сломалось: no luck")

            #expect(out["unknown"]?["error"] == "TaskInputError", "\(out)")
            #expect(out["unknown"]?["message"] == "unknown task 'no_such_task'", "\(out)")
            #expect(out["bad_args"]?["error"] == "TaskInputError", "\(out)")
            #expect(out["bad_args"]?["message"] == "add() takes 2 arguments but 3 were given", "\(out)")

            // Failures are dead-lettered as usual, still Celery messages.
            try await waitUntil("3 dead letters", timeout: 30) {
                try await scope.admin.queueInfo(scope.deadLetterQueue)?.messageCount == 3
            }
            let dead = try #require(try await scope.admin.get(scope.deadLetterQueue))
            #expect(dead.properties.headers?["task"] != nil, "the dead letter keeps Celery's headers")
            #expect(!worker.standardErrorText.contains("queue exists with other arguments"), "\(worker.stderrTail())")
            // Celery declared a direct exchange named after its queue.
            await scope.admin.deleteExchange(scope.queue)
        }
    }

    /// Celery's default queue `celery`, declared by Celery first (a plain
    /// durable queue): the task waits there until our worker starts.
    @Test func workerConsumesCelerysDefaultQueue() async throws {
        try await TestScope.run("celery-default") { scope in
            scope.deleteAtEnd("celery")
            scope.deleteAtEnd("celery.dlq")
            await scope.admin.deleteQueues(["celery", "celery.dlq"])
            let python = try await PythonProducer.python(importing: "celery")
            let script = #"""
                import json, sys
                from celery import Celery
                app = Celery("producer", broker=sys.argv[1], backend="rpc://")
                result = app.send_task("add", args=[2, 3])
                print(json.dumps({"value": result.get(timeout=30), "id": result.id}))
                """#
            let producer = try scope.spawn(python, ["-c", script, IntegrationEnvironment.url])
            try await waitUntil("Celery to queue its task in 'celery'", timeout: 20) {
                try await scope.admin.queueInfo("celery")?.messageCount == 1
            }
            _ = try await scope.startWorker(queues: ["celery"])
            let ended = await producer.waitForExit(timeout: 30)
            #expect(ended == .exited(0), "\(producer.standardErrorText)")
            let out = try JSONDecoder().decode(JSONValue.self, from: producer.standardOutput)
            #expect(out["value"] == 5, "\(out)")
            await scope.admin.deleteExchange("celery")
        }
    }
}
