import AMQP
import Foundation
import QTasks
import Testing

/// The real Python QTasks (pinned in deploy/install-deps.sh), unchanged, as
/// the producer: `QueueTasks(broker=AsyncRabbitMQBroker(...)).add_task`.
///
/// QTasks producers set no `reply_to` (their results are read from Redis),
/// so the worker publishes no result: what shows that a task ran is its
/// effect: `step1` writes its State, and the worker logs every task's
/// outcome with its uuid.
@Suite(.enabled(if: IntegrationEnvironment.enabled, "no RabbitMQ reachable at QTASKS_URL; deploy/test.sh starts one"),
       .timeLimit(.minutes(2)))
struct QTasksProducerTests {
    static let script = #"""
        import asyncio, json, sys
        from qtasks.asyncio import QueueTasks
        from qtasks.brokers import AsyncRabbitMQBroker
        from qtasks.storages import AsyncRedisStorage

        url, redis_url, user = sys.argv[1:4]

        async def main():
            # QTasks' defaults: app "QueueTasks", queue "QueueTasks:task_queue";
            # the task's status goes to Redis, the message to RabbitMQ.
            broker = AsyncRabbitMQBroker(url=url, storage=AsyncRedisStorage(url=redis_url))
            app = QueueTasks(broker=broker)
            added = await app.add_task("add", 2, 3)
            step = await app.add_task("step1", user, priority=1)
            named = await app.add_task("word_count", "раз два два", top=1)
            await broker.connection.close()
            print(json.dumps({"queue": broker.queue_name, "add": str(added.uuid), "step1": str(step.uuid),
                              "word_count": str(named.uuid)}))

        asyncio.run(main())
        """#

    @Test(.enabled(if: IntegrationRedis.enabled, "QTasks producers keep task status in Redis; deploy/redis.sh start"))
    func qtasksProducerTasksRunOnOurWorker() async throws {
        try await TestScope.run("qtasks") { scope in
            let queue = "QueueTasks:task_queue"
            scope.deleteAtEnd(queue)
            scope.deleteAtEnd(queue + ".dlq")
            await scope.admin.deleteQueues([queue, queue + ".dlq"])
            let state = try StateDirectory()
            defer { state.remove() }
            // Plain by default: QTasks declares it durable with no
            // arguments, and so does the worker.
            let worker = try await scope.startWorker(on: queue, arguments: ["--state", state.sqliteURL])
            let user = "qtasks-\(UUID().uuidString.prefix(8))"
            let out = try await PythonProducer.run(
                Self.script, [IntegrationEnvironment.url, IntegrationRedis.url, user], importing: "qtasks")
            #expect(out["queue"] == .string(queue))
            let uuids = try ["add", "step1", "word_count"].map { try #require(out[$0]?.stringValue, "\(out)") }

            try await waitUntil("the worker to run the 3 QTasks tasks", timeout: 20) {
                let log = worker.standardErrorText
                return uuids.allSatisfy { log.contains("uuid=\($0)") }
            }
            let lines = worker.standardErrorText.split(separator: "\n").filter { line in uuids.contains { line.contains("uuid=\($0)") } }
            #expect(lines.count == 3 && lines.allSatisfy { $0.contains("task succeeded") }, "\(lines)")

            // step1's effect: its State, read back with the CLI.
            let read = try await scope.runCLI(["state", "get", "MyState", "--key", user, "--state", state.sqliteURL], url: nil)
            #expect(read.termination == .exited(0), "\(read)")
            #expect(read.stdout.contains(#""state":"await_phone""#) && read.stdout.contains("Введите телефон"), "\(read)")
            #expect(try await scope.admin.queueInfo(queue + ".dlq")?.messageCount == 0)
        }
    }
}
