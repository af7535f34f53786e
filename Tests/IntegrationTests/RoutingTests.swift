import AMQP
import Foundation
import QTasks
import QTasksRabbitMQ
import Testing

/// Exchanges other than the default one, declared from the worker's
/// configuration (`--bind`), and per-queue concurrency.
@Suite(.enabled(if: IntegrationEnvironment.enabled, "no RabbitMQ reachable at QTASKS_URL; deploy/test.sh starts one"),
       .timeLimit(.minutes(2)))
struct RoutingTests {
    /// Two workers, each binding its own queue to one topic exchange:
    /// `orders.*` reaches only the orders worker, `emails.*` only the
    /// emails worker, anything else no one.
    @Test func topicExchangeRoutesOrdersAndEmailsToTwoWorkers() async throws {
        try await TestScope.run("topic") { scope in
            let exchange = scope.queue + ".exchange"
            let orders = scope.queue + ".orders"
            let emails = scope.queue + ".emails"
            for queue in [orders, emails] {
                scope.deleteAtEnd(queue)
                scope.deleteAtEnd(queue + ".dlq")
            }
            let ordersWorker = try await scope.startWorker(on: orders, concurrency: 2, arguments: ["--bind", "\(exchange):topic:orders.*"])
            let emailsWorker = try await scope.startWorker(on: emails, concurrency: 2, arguments: ["--bind", "\(emails)=\(exchange):topic:emails.*"])

            let keys = ["orders.created", "emails.welcome", "orders.paid", "emails.reset", "orders.eu.created", "invoices.sent"]
            for key in keys {
                let body = #"{"uuid": "\#(key)", "task_name": "work", "args": [0]}"#
                try await scope.admin.publish(
                    Array(body.utf8), exchange: exchange, routingKey: key,
                    properties: AMQPProperties(contentType: "application/json", correlationID: key, replyTo: scope.replyQueue))
            }
            var byKey: [String: ResultMessage] = [:]
            for _ in 0..<4 {
                let reply = try await scope.nextReply("a routed task's result")
                byKey[reply.correlationID ?? ""] = reply
            }
            for key in ["orders.created", "orders.paid"] {
                #expect(byKey[key]?.returning?["queue"] == .string(orders), "\(key): \(byKey)")
                #expect(byKey[key]?.returning?["pid"] == .int(Int64(ordersWorker.pid)), "\(key)")
            }
            for key in ["emails.welcome", "emails.reset"] {
                #expect(byKey[key]?.returning?["queue"] == .string(emails), "\(key): \(byKey)")
                #expect(byKey[key]?.returning?["pid"] == .int(Int64(emailsWorker.pid)), "\(key)")
            }
            // `*` is one word: orders.eu.created matches no binding; nor
            // does invoices.sent. Nothing else arrives.
            try await Task.sleep(for: .milliseconds(500))
            #expect(try await scope.admin.get(scope.replyQueue) == nil)
            await scope.admin.deleteExchange(exchange)
        }
    }

    /// One worker, two queues: `slow` limited to 1 task at a time, `fast`
    /// sharing the rest. A backlog of slow tasks does not hold up the fast
    /// ones, and never runs two at once.
    @Test func perQueueConcurrencyKeepsABusyQueueFromStarvingAnother() async throws {
        try await TestScope.run("per-queue") { scope in
            let slow = scope.queue + ".slow"
            let fast = scope.queue + ".fast"
            for queue in [slow, fast] {
                scope.deleteAtEnd(queue)
                scope.deleteAtEnd(queue + ".dlq")
            }
            _ = try await scope.startWorker(
                on: slow, concurrency: 4, arguments: ["--queue", fast, "--queue-concurrency", "\(slow)=1"])
            let broker = try RabbitMQBroker(url: IntegrationEnvironment.url)
            let client = TaskClient(broker: broker)
            var slowHandles: [TaskHandle<JSONValue>] = []
            for _ in 0..<6 { slowHandles.append(try await client.send("work", args: [300], queue: slow)) }
            try await Task.sleep(for: .milliseconds(100))
            let start = ContinuousClock.now
            var fastHandles: [TaskHandle<JSONValue>] = []
            for _ in 0..<6 { fastHandles.append(try await client.send("work", args: [50], queue: fast)) }
            for handle in fastHandles {
                #expect(try await handle.result(timeout: .seconds(30)).status == .success)
            }
            let fastDone = ContinuousClock.now - start
            var slowResults: [TaskResult] = []
            for handle in slowHandles { slowResults.append(try await handle.result(timeout: .seconds(20))) }
            await client.close()
            await broker.close()
            // 6 fast tasks on the 3 free slots: ~100 ms, far from the 1.8 s
            // the slow backlog takes.
            #expect(fastDone < .seconds(1.2), "fast tasks took \(fastDone)")
            // One at a time: each slow task finished >= 300 ms after the one before.
            let finished = slowResults.map(\.updatedAt).sorted()
            let gaps = zip(finished.dropFirst(), finished).map { $0 - $1 }
            #expect(gaps.allSatisfy { $0 >= 0.28 }, "slow tasks overlapped: gaps \(gaps)")
        }
    }
}
