import AMQP
import Foundation
import Logging
import QTasks

/// Reads, replays and purges a dead-letter queue (`<queue>.dlq`): what
/// `qtasks dlq` runs.
///
/// Reading never removes a message: messages are fetched with `basic.get`
/// unacknowledged and returned to the queue (in their order) when the
/// reading channel closes. Replaying publishes each message back to its
/// origin queue with publisher confirms, and only then acknowledges it in
/// the dead-letter queue: a message is never lost, at worst (a crash
/// between the two) it is in both queues.
public final class DeadLetterQueueAdmin: Sendable {
    private let connection: AMQPConnection

    private init(connection: AMQPConnection) {
        self.connection = connection
    }

    /// Connects to the first of the configuration's ``RabbitMQBrokerConfiguration/endpoints``
    /// that accepts.
    /// - Throws: `BrokerError` `.connectionFailed`.
    public static func connect(
        _ configuration: RabbitMQBrokerConfiguration, logger: Logger = Logger(label: "qtasks.dlq")
    ) async throws -> DeadLetterQueueAdmin {
        do {
            let endpoints = configuration.endpoints.map { endpoint in
                var endpoint = endpoint
                if endpoint.connectionName == nil { endpoint.connectionName = "qtasks dlq" }
                return endpoint
            }
            let connection = try await Failover.connect(endpoints, startingAt: 0, logger: logger).connection
            return DeadLetterQueueAdmin(connection: connection)
        } catch {
            throw MessageMapping.brokerError(error)
        }
    }

    public func close() async {
        await connection.close()
    }

    /// The dead-letter queue of `queue`: `queue` itself when it already
    /// ends in `.dlq`.
    public static func deadLetterQueue(for queue: String) -> String {
        queue.hasSuffix(".dlq") ? queue : QueueNaming.deadLetterQueue(for: queue)
    }

    /// How many messages the queue holds (ready ones).
    /// - Throws: `BrokerError` `.refused` with 404 when it does not exist.
    public func count(_ queue: String) async throws -> Int {
        try await mapped {
            try await connection.withChannel { channel in
                Int(try await channel.declareQueue(queue, passive: true).messageCount)
            }
        }
    }

    /// The ready message count and consumer count of a queue (a passive
    /// `queue.declare`), or nil when the queue does not exist.
    public func status(_ queue: String) async throws -> (ready: Int, consumers: Int)? {
        do {
            return try await mapped {
                try await connection.withChannel { channel in
                    let info = try await channel.declareQueue(queue, passive: true)
                    return (Int(info.messageCount), Int(info.consumerCount))
                }
            }
        } catch let error as BrokerError where error.replyCode == 404 {
            return nil
        }
    }

    /// The first `limit` messages, left in the queue.
    ///
    /// - Parameter maxBodySize: bodies larger than this are not loaded
    ///   (the message's body is then empty); nil loads every body.
    public func browse(_ queue: String, limit: Int, maxBodySize: Int? = nil) async throws -> [DeadLetter] {
        try await mapped {
            // Closing the channel returns every unacknowledged message.
            try await connection.withChannel { channel in
                var letters: [DeadLetter] = []
                while letters.count < limit, let delivery = try await channel.get(queue: queue, noAck: false, maxBodySize: maxBodySize) {
                    letters.append(
                        DeadLetter(
                            message: Message(body: delivery.body, properties: MessageMapping.messageProperties(delivery.properties)),
                            position: letters.count + 1))
                }
                return letters
            }
        }
    }

    /// Moves up to `limit` messages back to their origin queues (the
    /// `x-qtasks-origin-queue` header, else RabbitMQ's `x-death`, else the
    /// name without `.dlq`), with the worker's failure headers and the
    /// attempt number removed, so each runs again as new.
    ///
    /// At most the messages the queue held when the replay started are
    /// moved: a replayed task that fails again comes back to the queue, and
    /// is not replayed a second time by the same call (else a replay of
    /// failing tasks would loop for ever).
    ///
    /// - Returns: how many were moved, by origin queue.
    /// - Throws: `BrokerError` when a publish fails (that message stays in
    ///   the dead-letter queue).
    public func replay(_ queue: String, limit: Int) async throws -> [String: Int] {
        try await mapped {
            // Both channels close, and their close is awaited, however the
            // loop ends: an unacknowledged message goes back to the
            // dead-letter queue before this returns.
            try await connection.withChannel { reader in
                try await connection.withChannel { publisher in
                    try await publisher.enableConfirms()
                    let present = Int(try await reader.declareQueue(queue, passive: true).messageCount)
                    let limit = min(limit, present)
                    var moved: [String: Int] = [:]
                    var count = 0
                    while count < limit, let delivery = try await reader.get(queue: queue, noAck: false) {
                        let origin = try await Self.republish(delivery, from: queue, on: publisher)
                        moved[origin, default: 0] += 1
                        count += 1
                    }
                    return moved
                }
            }
        }
    }

    /// Moves the message of task `uuid` back to its origin queue, as
    /// ``replay(_:limit:)`` does; the messages read before it go back to
    /// the dead-letter queue unchanged.
    ///
    /// - Parameter scanLimit: the most messages read to find it.
    /// - Returns: the origin queue, or nil when no message of the first
    ///   `scanLimit` is of that task.
    /// - Throws: `BrokerError` when the publish fails (the message stays).
    public func replay(_ queue: String, uuid: String, scanLimit: Int = 10_000) async throws -> String? {
        try await mapped {
            try await connection.withChannel { reader in
                try await connection.withChannel { publisher in
                    try await publisher.enableConfirms()
                    var scanned = 0
                    while scanned < scanLimit, let delivery = try await reader.get(queue: queue, noAck: false) {
                        scanned += 1
                        let letter = DeadLetter(
                            message: Message(body: delivery.body, properties: MessageMapping.messageProperties(delivery.properties)),
                            position: scanned)
                        // Others stay unacknowledged: closing the reader returns them.
                        guard letter.uuid == uuid else { continue }
                        return try await Self.republish(delivery, from: queue, on: publisher)
                    }
                    return nil
                }
            }
        }
    }

    /// Publishes a dead-lettered delivery to its origin queue as a new
    /// first attempt, with confirms, then acknowledges it; rejects it back
    /// to the queue when the publish fails. Returns the origin queue.
    private static func republish(_ delivery: AMQPDelivery, from queue: String, on publisher: AMQPChannel) async throws -> String {
        let letter = DeadLetter(
            message: Message(body: delivery.body, properties: MessageMapping.messageProperties(delivery.properties)),
            position: 1)
        let origin = letter.originQueue ?? (queue.hasSuffix(".dlq") ? String(queue.dropLast(4)) : queue)
        var properties = delivery.properties
        var headers = properties.headers ?? [:]
        for key in Self.failureHeaders { headers[key] = nil }
        headers["x-qtasks-replayed-at"] = .double(Date().timeIntervalSince1970)
        properties.headers = headers
        do {
            try await publisher.publish(delivery.body, routingKey: origin, mandatory: true, properties: properties)
        } catch {
            try? await delivery.reject(requeue: true)
            throw error
        }
        try await delivery.ack()
        return origin
    }

    /// Deletes every ready message of the queue; returns how many.
    public func purge(_ queue: String) async throws -> Int {
        try await mapped {
            try await connection.withChannel { channel in
                Int(try await channel.purgeQueue(queue))
            }
        }
    }

    /// Dropped when a message is replayed: it starts again as attempt 1.
    static let failureHeaders: Set<String> = MessageHeaders.brokerDeathHeaders.union([
        MessageHeaders.attempt, MessageHeaders.attempts, MessageHeaders.errorType, MessageHeaders.errorMessage,
        MessageHeaders.failedAt, MessageHeaders.firstFailedAt, MessageHeaders.originQueue, MessageHeaders.retryDelay,
        MessageHeaders.transientRetries, MessageHeaders.transientSince,
    ])

    private func mapped<T>(_ body: () async throws -> T) async throws -> T {
        do {
            return try await body()
        } catch {
            throw MessageMapping.brokerError(error)
        }
    }
}
