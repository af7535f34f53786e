import AMQP
import Foundation
import QTasks
import Testing

/// The real Taskiq 0.13 with taskiq-aio-pika 0.6.1 (pinned in
/// deploy/install-deps.sh) as the producer: `task.kiq(...)` publishes to
/// its topic exchange `taskiq` with the queue's name as routing key; our
/// worker process runs it under Taskiq's `task_id`. In both start orders:
/// with `--taskiq-queues` the worker declares the queue, its dead-letter
/// queue, the exchange and the binding as taskiq-aio-pika's `startup()`
/// does, which then accepts them.
@Suite(.enabled(if: IntegrationEnvironment.enabled, "no RabbitMQ reachable at QTASKS_URL; deploy/test.sh starts one"),
       .timeLimit(.minutes(2)))
struct TaskiqProducerTests {
    /// Declares taskiq-aio-pika's queue (a quorum queue with its own
    /// dead-letter arguments) and binds it to the exchange at startup, then
    /// sends.
    static let script = #"""
        import asyncio, json, sys
        from taskiq_aio_pika import AioPikaBroker
        from taskiq_aio_pika.exchange import Exchange
        from taskiq_aio_pika.queue import Queue

        url, queue, exchange = sys.argv[1:4]
        broker = AioPikaBroker(url, exchange=Exchange(name=exchange), task_queues=[Queue(name=queue)],
                               dead_letter_queue=Queue(name=queue + ".taskiq-dead"))

        @broker.task(task_name="add")
        async def add(a: int, b: int) -> int:
            return a + b

        @broker.task(task_name="echo")
        async def echo(*args, **kwargs):
            return None

        async def main():
            await broker.startup()
            first = await add.kiq(2, 3)
            second = await echo.kiq("Привет", city="Москва")
            await broker.shutdown()
            print(json.dumps({"add": first.task_id, "echo": second.task_id}))

        asyncio.run(main())
        """#

    /// Taskiq's dead-letter queue in these tests (its `dead_letter_queue=`),
    /// so that a test deletes only what it made.
    static func deadLetterQueue(_ scope: TestScope) -> String { scope.queue + ".taskiq-dead" }

    /// Taskiq's exchange in these tests (its `exchange=Exchange(name=...)`,
    /// topic as by default): one per test, so tests in parallel do not
    /// delete each other's.
    static func exchange(_ scope: TestScope) -> String { scope.queue + ".taskiq" }

    /// Runs the script (Taskiq's `startup()`, two `kiq`s, `shutdown()`).
    static func runTaskiq(_ scope: TestScope) async throws -> JSONValue {
        // aio-pika wants the vhost "/" as %2F, as our URL has it.
        try await PythonProducer.run(script, [IntegrationEnvironment.url, scope.queue, exchange(scope)], importing: "taskiq_aio_pika")
    }

    /// The worker flags that declare the test's queue as the script's
    /// `AioPikaBroker` does.
    static func taskiqFlags(_ scope: TestScope) -> [String] {
        [
            "--taskiq-queues", "--taskiq-exchange", exchange(scope) + ":topic", "--taskiq-dead-letter-queue", deadLetterQueue(scope),
            "--log-format", "json",
        ]
    }

    /// Waits for both tasks to succeed under the ids Taskiq printed.
    static func expectBothRan(_ out: JSONValue, on worker: ChildProcess) async throws {
        let add = try #require(out["add"]?.stringValue, "\(out)")
        let echo = try #require(out["echo"]?.stringValue, "\(out)")
        for id in [add, echo] {
            try await waitUntil("task \(id) to run under Taskiq's task_id", timeout: 20) {
                WorkerLog.success(of: id, in: worker.standardErrorText) != nil
            }
        }
        #expect(WorkerLog.success(of: add, in: worker.standardErrorText)?["task"] as? String == "add")
    }

    /// Taskiq first: its `startup()` declares the queue; the worker with
    /// `--taskiq-queues` declares the same, so it logs no conflict.
    @Test func taskiqKiqRunsOnOurWorkerUnderItsTaskID() async throws {
        try await TestScope.run("taskiq") { scope in
            scope.deleteAtEnd(Self.deadLetterQueue(scope))
            let out = try await Self.runTaskiq(scope)
            #expect(try await scope.admin.queueInfo(scope.queue)?.messageCount == 2, "both routed through Taskiq's exchange")

            let worker = try await scope.startWorker(on: scope.queue, arguments: Self.taskiqFlags(scope))
            try await Self.expectBothRan(out, on: worker)
            #expect(!worker.standardErrorText.contains("queue exists with other arguments"), "\(worker.stderrTail())")
            await scope.stopGracefully(worker)
            #expect(try await scope.admin.queueInfo(scope.queue)?.messageCount == 0)
            #expect(try await scope.admin.queueInfo(scope.deadLetterQueue)?.messageCount == 0)
            await scope.admin.deleteExchange(Self.exchange(scope))
        }
    }

    /// Worker first, with `--taskiq-queues`: Taskiq's `startup()`, run
    /// afterwards, finds its queue, dead-letter queue, exchange and binding
    /// equivalent to its own (else it fails with 406), and its tasks run.
    @Test func theWorkerMayStartBeforeTaskiq() async throws {
        try await TestScope.run("taskiq-first") { scope in
            scope.deleteAtEnd(Self.deadLetterQueue(scope))
            let worker = try await scope.startWorker(on: scope.queue, arguments: Self.taskiqFlags(scope))
            #expect(try await scope.admin.queueInfo(Self.deadLetterQueue(scope)) != nil, "the worker declared Taskiq's dead-letter queue")
            let out = try await Self.runTaskiq(scope)
            try await Self.expectBothRan(out, on: worker)
            await scope.stopGracefully(worker)
            #expect(try await scope.admin.queueInfo(scope.deadLetterQueue)?.messageCount == 0)
            await scope.admin.deleteExchange(Self.exchange(scope))
        }
    }

    /// The control: a worker started first without `--taskiq-queues`
    /// declares the queue plainly, and Taskiq's `startup()` is refused
    /// (what the flag is for).
    @Test func withoutTheFlagTaskiqCannotComeSecond() async throws {
        try await TestScope.run("taskiq-plain") { scope in
            scope.deleteAtEnd(Self.deadLetterQueue(scope))
            let worker = try await scope.startWorker(on: scope.queue)
            let python = try await PythonProducer.python(importing: "taskiq_aio_pika")
            let run = try await ChildProcess.run(
                python, ["-c", Self.script, IntegrationEnvironment.url, scope.queue, Self.exchange(scope)], environment: ["PYTHONIOENCODING": "utf-8"],
                timeout: 60)
            #expect(run.termination != .exited(0), "\(run)")
            #expect(run.stderr.contains("inequivalent arg"), "\(run)")
            await scope.stopGracefully(worker)
            await scope.admin.deleteExchange(Self.exchange(scope))
        }
    }
}
