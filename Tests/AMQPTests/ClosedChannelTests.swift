import AMQP
import Foundation
import Testing

/// A channel the broker closed is never written to again (#17 item 5: an
/// ack sent on a closed channel is a `504 CHANNEL_ERROR` that closes the
/// whole connection): acks, rejects and publishes fail at once with the
/// broker's reason, and the connection stays open.
@Suite(.enabled(if: TestBroker.enabled, "no RabbitMQ reachable at QTASKS_URL; deploy/test.sh starts one"))
struct ClosedChannelTests {
    @Test func aChannelClosedByTheBrokerRefusesAcksRejectsAndPublishesAndTheConnectionLives() async throws {
        let connection = try await AMQPConnection.connect(TestBroker.configuration)
        defer { Task { await connection.close() } }
        let queue = TestBroker.uniqueQueue("closed-channel")
        let setup = try await connection.openChannel()
        try await setup.declareQueue(queue, durable: false, autoDelete: false)
        defer { Task { try? await connection.openChannel().deleteQueue(queue) } }
        try await setup.publish(Array("one".utf8), routingKey: queue)

        let channel = try await connection.openChannel()
        try await channel.enableConfirms()
        let consumer = try await channel.consume(queue: queue)
        var iterator = consumer.makeAsyncIterator()
        let delivery = try #require(try await iterator.next())
        #expect(channel.isOpen)
        #expect(channel.closeReason == nil)

        // The broker closes the channel on its own time (a publish to a
        // missing exchange: 404), as it does for consumer_timeout (406).
        await #expect {
            try await channel.publish(Array("x".utf8), exchange: "qtasks-missing-\(UUID().uuidString)", routingKey: "x")
        } throws: { ($0 as? AMQPError)?.code == .channelClosed && ($0 as? AMQPError)?.replyCode == 404 }
        #expect(!channel.isOpen)
        let reason = try #require(channel.closeReason)
        #expect(reason.replyCode == 404)
        #expect(reason.replyText?.contains("NOT_FOUND") == true)

        // Each fails at once, naming the broker's reason; nothing is sent.
        #expect { try channel.enqueueAck(deliveryTag: delivery.deliveryTag) } throws: { error in
            let error = error as? AMQPError
            return error?.code == .staleDeliveryTag && error?.replyCode == 404 && error?.message.contains("nothing was sent") == true
        }
        await #expect { try await channel.ack(deliveryTag: delivery.deliveryTag) } throws: {
            ($0 as? AMQPError)?.code == .staleDeliveryTag && ($0 as? AMQPError)?.replyCode == 404
        }
        await #expect { try await channel.reject(deliveryTag: delivery.deliveryTag, requeue: true) } throws: {
            ($0 as? AMQPError)?.code == .staleDeliveryTag
        }
        await #expect { try await channel.nack(deliveryTag: delivery.deliveryTag, requeue: false) } throws: {
            ($0 as? AMQPError)?.code == .staleDeliveryTag
        }
        await #expect { try await channel.publish(Array("y".utf8), routingKey: queue) } throws: {
            ($0 as? AMQPError)?.code == .channelClosed && ($0 as? AMQPError)?.replyCode == 404
        }
        let batch = try await channel.publish(batch: [AMQPOutgoingMessage(Array("z".utf8), routingKey: queue)])
        #expect(batch.count == 1)
        if case .failure(let error) = batch.first { #expect(error.code == .channelClosed) } else { Issue.record("the batch publish was sent") }
        await #expect { try await channel.declareQueue(queue, passive: true) } throws: { ($0 as? AMQPError)?.code == .channelClosed }
        await channel.close()

        // A round trip on another channel: had any frame gone out on the
        // closed one, the broker would have closed the connection (504)
        // before answering.
        let other = try await connection.openChannel()
        let info = try await other.declareQueue(queue, passive: true)
        #expect(connection.isOpen)
        #expect(other.isOpen)
        // The broker requeued the unacknowledged delivery of the closed channel.
        #expect(info.messageCount == 1)
        let again = try #require(try await other.get(queue: queue))
        #expect(again.redelivered)
        try await other.ack(deliveryTag: again.deliveryTag)
        #expect(connection.isOpen)
    }

    @Test func aChannelClosedByThisProcessSaysSo() async throws {
        let connection = try await AMQPConnection.connect(TestBroker.configuration)
        defer { Task { await connection.close() } }
        let channel = try await connection.openChannel()
        await channel.close()
        #expect(!channel.isOpen)
        #expect(channel.closeReason?.code == .channelClosed)
        #expect(channel.closeReason?.replyCode == nil)
        await #expect { try await channel.publish(Array("y".utf8), routingKey: "nowhere") } throws: {
            ($0 as? AMQPError)?.code == .channelClosed
        }
        await connection.close()
        #expect(!channel.isOpen)
    }
}
