import AMQP
import ArgumentParser
import Foundation
import QTasksRabbitMQ

/// `qtasks-benchmark prefill`: queues no-op tasks for profiling a worker by
/// hand (`perf record ... qtasks-benchmark worker ...`).
struct Prefill: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "prefill", abstract: "Queue --count no-op tasks on --queue (for profiling by hand).")

    @Option var url: String = ProcessInfo.processInfo.environment["QTASKS_URL"] ?? "amqp://guest:guest@127.0.0.1:5672/%2F"
    @Option var queue: String
    @Option var count: Int = 100_000
    @Option(help: "Set reply_to on every task (a queue that must exist).") var replyTo: String?
    @Option(help: "Publisher confirm window.") var window: Int = 1024
    @Option(help: "Publishes awaiting their confirm at once.") var inFlight: Int = 2048

    func run() async throws {
        let broker = try RabbitMQBroker(url: url)
        try await broker.declareTaskQueue(queue)
        await broker.close()
        let connection = try await AMQPConnection.connect(try AMQPConfiguration(url: url))
        let channel = try await connection.openChannel()
        try await channel.enableConfirms(window: window)
        let properties = AMQPProperties(
            contentType: "application/json", deliveryMode: AMQPProperties.persistentDeliveryMode, replyTo: replyTo)
        let start = ContinuousClock.now
        try await withThrowingTaskGroup(of: Void.self) { group in
            for index in 0..<count {
                if index >= inFlight { try await group.next() }
                group.addTask { try await channel.publish(RunBenchmark.taskBody("noop"), routingKey: queue, properties: properties) }
            }
            try await group.waitForAll()
        }
        let seconds = (ContinuousClock.now - start).seconds
        print("queued \(count) tasks on \(queue) in \(String(format: "%.2f", seconds)) s (\(Int(Double(count) / seconds))/s with confirms)")
        await connection.close()
    }
}
