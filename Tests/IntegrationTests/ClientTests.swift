import Foundation
import Logging
import QTasks
import QTasksRabbitMQ
import Testing

/// The Swift ``TaskClient`` over ``RabbitMQBroker`` against a worker process.
@Suite(.enabled(if: IntegrationEnvironment.enabled, "no RabbitMQ reachable at QTASKS_URL; deploy/test.sh starts one"),
       .timeLimit(.minutes(2)))
struct ClientTests {
    /// Runs `body` with a client on its own broker connections, closed after.
    private func withClient(_ body: (TaskClient) async throws -> Void) async throws {
        var logger = Logger(label: "qtasks.integration-tests.client")
        logger.logLevel = .warning
        let broker = try RabbitMQBroker(url: IntegrationEnvironment.url, logger: logger)
        let client = TaskClient(broker: broker)
        do {
            try await body(client)
        } catch {
            await client.close()
            await broker.close()
            throw error
        }
        await client.close()
        await broker.close()
    }

    @Test func echoRoundTripsRussianTextAndEmoji() async throws {
        try await TestScope.run("client-utf8") { scope in
            _ = try await scope.startWorker()
            try await withClient { client in
                let args: [JSONValue] = ["Введите телефон", "Съешь же ещё этих мягких французских булок 🥐", "😀🇷🇺👨‍💻", "ё"]
                let kwargs: [String: JSONValue] = ["телефон": "+7 (999) 123-45-67 ☎️", "emoji": ["🚀", "✨"], "ключ": ["вложенный": "да"]]
                let handle = try await client.send("echo", args: args, kwargs: kwargs, queue: scope.queue)
                let result = try await handle.result(timeout: .seconds(20))
                #expect(result.status == .success, "\(result)")
                #expect(result.uuid == handle.uuid)
                #expect(result.taskName == "echo")
                #expect(result.returning == ["args": .array(args), "kwargs": .object(kwargs)])
                #expect(result.traceback == nil)
            }
        }
    }

    /// 200 `add` tasks sent at once through one client to one worker process:
    /// every result arrives, each with its own sum.
    @Test func twoHundredConcurrentSendsAllGetTheirResults() async throws {
        try await TestScope.run("client-many") { scope in
            _ = try await scope.startWorker(concurrency: 10)
            try await withClient { client in
                let count = 200
                let sums = try await withThrowingTaskGroup(of: (Int, TaskResult).self) { group in
                    for i in 0..<count {
                        group.addTask {
                            let handle = try await client.send("add", args: [.int(Int64(i)), .int(1000)], queue: scope.queue)
                            let result = try await handle.result(timeout: .seconds(60))
                            #expect(result.uuid == handle.uuid)
                            return (i, result)
                        }
                    }
                    var sums: [Int: TaskResult] = [:]
                    for try await (i, result) in group { sums[i] = result }
                    return sums
                }
                #expect(sums.count == count)
                for (i, result) in sums {
                    #expect(result.status == .success, "\(result)")
                    #expect(result.returning == .int(Int64(i + 1000)), "add(\(i), 1000): \(result)")
                }
            }
            #expect(try await scope.admin.queueInfo(scope.queue)?.messageCount == 0)
            #expect(try await scope.admin.get(scope.deadLetterQueue) == nil)
        }
    }
}
