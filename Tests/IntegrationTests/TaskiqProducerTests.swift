import AMQP
import Foundation
import QTasks
import Testing

/// The real Taskiq 0.13 with taskiq-aio-pika 0.6.1 (pinned in
/// deploy/install-deps.sh) as the producer: `task.kiq(...)` publishes to
/// its topic exchange `taskiq` with the queue's name as routing key; our
/// worker process runs it under Taskiq's `task_id`.
@Suite(.enabled(if: IntegrationEnvironment.enabled, "no RabbitMQ reachable at QTASKS_URL; deploy/test.sh starts one"),
       .timeLimit(.minutes(2)))
struct TaskiqProducerTests {
    /// Declares taskiq-aio-pika's queue (a quorum queue with its own
    /// dead-letter arguments) and binds it to the exchange at startup, then
    /// sends.
    static let script = #"""
        import asyncio, json, sys
        from taskiq_aio_pika import AioPikaBroker
        from taskiq_aio_pika.queue import Queue

        url, queue = sys.argv[1:3]
        broker = AioPikaBroker(url, task_queues=[Queue(name=queue)], dead_letter_queue=Queue(name=queue + ".taskiq-dead"))

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

    @Test func taskiqKiqRunsOnOurWorkerUnderItsTaskID() async throws {
        try await TestScope.run("taskiq") { scope in
            scope.deleteAtEnd(scope.queue + ".taskiq-dead")
            // aio-pika wants the vhost "/" as %2F, as our URL has it.
            let out = try await PythonProducer.run(Self.script, [IntegrationEnvironment.url, scope.queue], importing: "taskiq_aio_pika")
            let add = try #require(out["add"]?.stringValue, "\(out)")
            let echo = try #require(out["echo"]?.stringValue, "\(out)")
            #expect(try await scope.admin.queueInfo(scope.queue)?.messageCount == 2, "both routed through the exchange 'taskiq'")

            let worker = try await scope.startWorker(on: scope.queue, arguments: ["--log-format", "json"])
            for id in [add, echo] {
                try await waitUntil("task \(id) to run under Taskiq's task_id", timeout: 20) {
                    WorkerLog.success(of: id, in: worker.standardErrorText) != nil
                }
            }
            #expect(WorkerLog.success(of: add, in: worker.standardErrorText)?["task"] as? String == "add")
            await scope.stopGracefully(worker)
            #expect(try await scope.admin.queueInfo(scope.queue)?.messageCount == 0)
            #expect(try await scope.admin.queueInfo(scope.deadLetterQueue)?.messageCount == 0)
            await scope.admin.deleteExchange("taskiq")
        }
    }
}
