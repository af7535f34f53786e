import AMQP
import Foundation
import QTasks
import QTasksRabbitMQ
import Testing

/// `RabbitMQEventPublisher` against the broker, on an exchange of the
/// test's own.
@Suite(.enabled(if: IntegrationEnvironment.enabled, "no RabbitMQ reachable at QTASKS_URL; deploy/test.sh starts one"),
       .timeLimit(.minutes(1)))
struct EventPublisherTests {
    private func bind(_ admin: BrokerAdmin, queue: String, exchange: String, pattern: String) async throws {
        try await admin.connection.withChannel { channel in
            try await channel.bindQueue(queue, exchange: exchange, routingKey: pattern)
        }
    }

    private func event(_ kind: TaskEvent.Kind, uuid: String) -> TaskEvent {
        TaskEvent(
            kind: kind, uuid: uuid, taskName: "billing.charge", queue: "default", attempt: 1, workerID: "host.1.abcd",
            timestamp: Date(timeIntervalSince1970: 1_733_430_000.25), result: kind == .succeeded ? 5 : nil)
    }

    /// Events and heartbeats as JSON, transient, with their routing keys;
    /// a publish that fails throws, and the next one declares the exchange
    /// again; the description has no password.
    @Test func publishesEventsAndHeartbeatsAndRecoversFromADeletedExchange() async throws {
        let exchange = "it-events-\(UUID().uuidString.prefix(8).lowercased())"
        let admin = try await BrokerAdmin.connect()
        let queue = exchange + ".tail"
        let publisher = RabbitMQEventPublisher(
            configuration: try RabbitMQBrokerConfiguration(url: IntegrationEnvironment.url), exchange: exchange)
        do {
            #expect(!publisher.description.contains("guest:guest"), "\(publisher)")
            #expect(publisher.description.contains(exchange), "\(publisher)")
            try await publisher.connect()
            try await admin.declareReplyQueue(queue)
            try await bind(admin, queue: queue, exchange: exchange, pattern: "#")

            let uuid = UUID().uuidString.lowercased()
            let events = [event(.started, uuid: uuid), event(.succeeded, uuid: uuid)]
            try await publisher.record(events)
            for expected in events {
                let message = try await admin.waitForMessage(in: queue, timeout: 10, "event \(expected.kind)")
                #expect(message.routingKey == expected.routingKey)
                #expect(message.exchange == exchange)
                #expect(message.properties.contentType == "application/json")
                #expect(message.properties.deliveryMode == AMQPProperties.transientDeliveryMode)
                #expect(try JSONDecoder().decode(TaskEvent.self, from: Data(message.body)) == expected)
            }

            let now = Date()
            let heartbeat = WorkerHeartbeat(
                workerID: "host.1.abcd", host: "host", pid: 1, queues: ["default"], concurrency: 4, inFlight: 0,
                processed: 2, failed: 0, retried: 0, startedAt: now, sentAt: now, expiresAt: now + 15, isOnline: false)
            try await publisher.recordHeartbeat(heartbeat)
            let beat = try await admin.waitForMessage(in: queue, timeout: 10, "the heartbeat")
            #expect(beat.routingKey == "worker.offline")
            #expect(try JSONDecoder().decode(WorkerHeartbeat.self, from: Data(beat.body)).workerID == "host.1.abcd")

            // Deleted behind its back: the publish fails (404) and throws;
            // the next one declares the exchange again and goes through.
            await admin.deleteExchange(exchange)
            await #expect(throws: BrokerError.self) { try await publisher.record(events) }
            try await publisher.record([])
            let again = event(.failed, uuid: uuid)
            try await waitUntil("a publish to succeed after the exchange was deleted", timeout: 30) {
                (try? await publisher.record([again])) != nil
            }
            try await bind(admin, queue: queue, exchange: exchange, pattern: "task.failed.#")
            try await publisher.record([again])
            let failed = try await admin.waitForMessage(in: queue, timeout: 10, "the event after recovering")
            #expect(failed.routingKey == "task.failed.billing.charge")
        } catch {
            await publisher.close()
            await admin.deleteExchange(exchange)
            await admin.close()
            throw error
        }
        await publisher.close()
        await #expect(throws: BrokerError.self) { try await publisher.record([event(.started, uuid: "x")]) }
        await admin.deleteExchange(exchange)
        await admin.close()
    }
}
