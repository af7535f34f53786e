import AMQP
import Foundation
import QTasks
import QTasksRabbitMQ
import QTasksState
import QTasksStateStores
import Synchronization
import TestSupport
import Testing

/// Issue #17 item 6: Redis, the State backend, taken away for a few seconds
/// under a stream of the seed's `step1`/`step2` tasks on a real RabbitMQ,
/// with the worker's defaults (no retry policy). The unavailable store is a
/// transient error: the tasks are retried through the broker's delay
/// queues, none is dead-lettered, and every one succeeds once Redis is back.
///
/// `QTASKS_TEST_TRANSIENT_RETRY=off` runs the same stream with transient
/// retries disabled (the behaviour before them), to see the test fail.
@Suite(
    .enabled(if: IntegrationEnvironment.enabled, "no RabbitMQ at QTASKS_URL; deploy/rabbitmq.sh start"),
    .enabled(if: PrivateRedis.binary != nil, "redis-server is not installed"),
    .serialized)
struct StateOutageTests {
    struct MyState: StateNamespace {}

    @Test(.timeLimit(.minutes(5)))
    func redisKilledUnderStateLoadDeadLettersNothing() async throws {
        try await PrivateRedis.with { redis in try await run(redis) }
    }

    private func run(_ redis: PrivateRedis) async throws {
        let total = 2_000
        let queue = IntegrationEnvironment.uniqueQueue("state-outage")
        var stateConfiguration = StateStoreConfiguration()
        stateConfiguration.timeout = .seconds(1)
        let stateStore: Dependency<any StateStore> = .stateStore(url: redis.url, configuration: stateConfiguration)

        let runs = Atomic<Int>(0)
        let failures = Atomic<Int>(0)
        let app = TaskApp()
        // The seed's steps (Sources/qtasks-example/ExampleTasks+State.swift),
        // keyed by user so that the stream's states stay apart.
        try app.register("step1", parameters: ["user"]) { (context: TaskContext, user: String) -> String in
            runs.add(1, ordering: .relaxed)
            do {
                let state = try await context.state(MyState.self, key: user, from: stateStore)
                try await state.set("state", to: "await_phone")
                try await state.update(["step": 1, "prompt": "Введите телефон"])
                return "ok"
            } catch {
                failures.add(1, ordering: .relaxed)
                throw error
            }
        }
        try app.register("step2", parameters: ["user"]) { (context: TaskContext, user: String) -> String in
            runs.add(1, ordering: .relaxed)
            do {
                let state = try await context.state(MyState.self, key: user, from: stateStore)
                _ = try await state.getAll()
                try await state.update(["step": 2])
                return "ok"
            } catch {
                failures.add(1, ordering: .relaxed)
                throw error
            }
        }
        var configuration = WorkerConfiguration(queues: [queue], concurrency: 10, shutdownGracePeriod: .seconds(10))
        var logger = configuration.logger
        logger.logLevel = .critical
        configuration.logger = logger
        if ProcessInfo.processInfo.environment["QTASKS_TEST_TRANSIENT_RETRY"] == "off" {
            configuration.transientRetry = .disabled
        }
        let broker = try RabbitMQBroker(url: IntegrationEnvironment.url)
        try await broker.connect()
        let worker = Worker(broker: broker, app: app, configuration: configuration)

        let started = ContinuousClock.now
        var outage: Duration = .zero
        var results: [TaskResult] = []
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await worker.run() }
            try await TaskClient.withClient(broker: broker) { client in
                // The stream: 2,000 tasks, 50 every 100 ms (about 4 s);
                // Redis is stopped after 1 s for 4 s.
                let handles = try await withThrowingTaskGroup(of: [TaskHandle<JSONValue>].self) { senders in
                    senders.addTask {
                        var handles: [TaskHandle<JSONValue>] = []
                        for batch in stride(from: 0, to: total, by: 50) {
                            let requests = (batch..<batch + 50).map { index in
                                TaskRequest(index % 2 == 0 ? "step1" : "step2", args: [.string("user-\(index / 2)")], queue: queue)
                            }
                            handles += try await client.send(batch: requests)
                            try await Task.sleep(for: .milliseconds(100))
                        }
                        return handles
                    }
                    try await Task.sleep(for: .seconds(1))
                    let away = ContinuousClock.now
                    await redis.stop()
                    try await Task.sleep(for: .seconds(4))
                    try await redis.start()
                    outage = ContinuousClock.now - away
                    return try await senders.next() ?? []
                }
                #expect(handles.count == total)
                results = try await withThrowingTaskGroup(of: TaskResult.self) { waiting in
                    for handle in handles {
                        waiting.addTask { try await handle.result(timeout: .seconds(180)) }
                    }
                    var results: [TaskResult] = []
                    for try await result in waiting { results.append(result) }
                    return results
                }
            }
            worker.triggerGracefulShutdown()
            try await group.waitForAll()
        }
        await broker.close()
        let elapsed = ContinuousClock.now - started

        let deadLettered = try await AMQPConnection.withConnection(IntegrationEnvironment.configuration) { connection in
            try await connection.withChannel { channel in
                let dead = try await channel.declareQueue(queue + ".dlq", passive: true).messageCount
                _ = try? await channel.deleteQueue(queue)
                _ = try? await channel.deleteQueue(queue + ".dlq")
                return Int(dead)
            }
        }
        let succeeded = results.filter { $0.status == .success }.count
        let unique = Set(results.map(\.uuid)).count
        let retried = results.filter { $0.retry > 0 }.count
        let errors = results.filter { $0.status == .error }
        print(
            "state-outage redis stopped \(format(outage)) s under \(total) step1/step2 tasks: sent \(total), results \(results.count), "
                + "succeeded \(succeeded), unique \(unique), retried tasks \(retried), failed runs \(failures.load(ordering: .relaxed)), "
                + "runs \(runs.load(ordering: .relaxed)), dead-lettered \(deadLettered), last result after \(format(elapsed)) s")
        #expect(failures.load(ordering: .relaxed) > 0, "the outage must have hit some tasks")
        #expect(deadLettered == 0)
        #expect(succeeded == total, "first error: \(errors.first?.traceback ?? "none")")
        #expect(unique == total)
    }

    private func format(_ duration: Duration) -> String {
        let (seconds, attoseconds) = duration.components
        return String(format: "%.1f", Double(seconds) + Double(attoseconds) / 1e18)
    }
}
