import Foundation
import QTasks
import QTasksRabbitMQ
import Testing

/// Priority queues (`x-max-priority`) with QTasks' convention: a lower
/// priority number runs first.
@Suite(.enabled(if: IntegrationEnvironment.enabled, "no RabbitMQ reachable at QTASKS_URL; deploy/test.sh starts one"),
       .timeLimit(.minutes(2)))
struct PriorityTests {
    /// 100 low-priority tasks (QTasks priority 5, AMQP 0), then 100 high
    /// ones (QTasks 0, AMQP 5; one of them sent by the CLI), all queued
    /// with no worker running. A worker with concurrency 1 and prefetch 1
    /// then runs every high one before any low one, but for at most the
    /// prefetch window.
    @Test func highPriorityTasksQueuedLastCompleteFirst() async throws {
        try await TestScope.run("priority") { scope in
            let maxPriority = 5
            var configuration = try RabbitMQBrokerConfiguration(url: IntegrationEnvironment.url)
            configuration.maxPriority = maxPriority
            let broker = RabbitMQBroker(configuration: configuration)
            let client = TaskClient(broker: broker)
            var low: [TaskHandle<JSONValue>] = []
            var high: [TaskHandle<JSONValue>] = []
            for _ in 0..<100 { low.append(try await client.send("work", args: [0], queue: scope.queue, priority: 5)) }
            for _ in 0..<99 { high.append(try await client.send("work", args: [0], queue: scope.queue, priority: 0)) }
            let sent = try await scope.runCLI([
                "send", "work", "0", "--queue", scope.queue, "--priority", "0", "--max-priority", String(maxPriority), "--wait", "0",
            ])
            #expect(sent.termination == .exited(0), "\(sent)")
            let cliUUID = sent.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            #expect(try await scope.admin.queueInfo(scope.queue)?.messageCount == 200)

            let prefetch = 1
            let worker = try await scope.startWorker(
                on: scope.queue, concurrency: 1,
                arguments: ["--prefetch", String(prefetch), "--max-priority", String(maxPriority)])
            for handle in high + low {
                #expect(try await handle.result(timeout: .seconds(30)).status == .success)
            }
            await client.close()
            await broker.close()

            // The completion order of all 200, from the worker's log (one
            // line per task, written as each finishes; concurrency 1).
            let highUUIDs = Set(high.map(\.uuid) + [cliUUID])
            let order = succeededUUIDs(in: worker).map(highUUIDs.contains)
            #expect(order.count == 200)
            let lowAmongFirst100 = order.prefix(100).filter { !$0 }.count
            let lastHigh = (order.lastIndex(of: true) ?? 0) + 1
            let firstLow = (order.firstIndex(of: false) ?? 0) + 1
            print("priority: of 200 queued (100 low sent first, then 100 high), low tasks among the first 100 completed: \(lowAmongFirst100); first low at position \(firstLow), last high at position \(lastHigh)")
            #expect(lowAmongFirst100 <= prefetch, "completion order (true = high): \(order)")
        }
    }
}

/// The uuids of the tasks a worker process logged as succeeded, in log
/// (completion) order.
func succeededUUIDs(in worker: ChildProcess) -> [String] {
    worker.standardErrorText.split(separator: "\n").compactMap { line -> String? in
        guard line.contains("task succeeded"), let range = line.range(of: "uuid=") else { return nil }
        return String(line[range.upperBound...].prefix { !$0.isWhitespace })
    }
}
