import AMQP
import Foundation

/// The test's own view of the broker, over the AMQP layer: reply queues,
/// raw publishes, `basic.get`, queue counts, clean-up.
final class BrokerAdmin: Sendable {
    let connection: AMQPConnection
    /// In confirm mode; for publishes and gets.
    private let channel: AMQPChannel

    private init(connection: AMQPConnection, channel: AMQPChannel) {
        self.connection = connection
        self.channel = channel
    }

    static func connect() async throws -> BrokerAdmin {
        var configuration = IntegrationEnvironment.configuration
        configuration.connectionName = "qtasks integration tests"
        let connection = try await AMQPConnection.connect(configuration)
        do {
            let channel = try await connection.openChannel()
            try await channel.enableConfirms()
            return BrokerAdmin(connection: connection, channel: channel)
        } catch {
            await connection.close()
            throw error
        }
    }

    func close() async {
        await connection.close()
    }

    /// Declares an exclusive reply queue: it vanishes with this connection.
    func declareReplyQueue(_ name: String) async throws {
        try await channel.declareQueue(name, durable: false, exclusive: true)
    }

    /// Publishes `body` to `queue` through the default exchange and waits for
    /// the broker's confirm; mandatory, so a missing queue is an error.
    func publish(_ body: [UInt8], to queue: String, properties: AMQPProperties) async throws {
        try await channel.publish(body, routingKey: queue, mandatory: true, properties: properties)
    }

    /// Publishes `body` to `exchange` with `routingKey` and waits for the
    /// broker's confirm; not mandatory (an unroutable message is dropped).
    func publish(_ body: [UInt8], exchange: String, routingKey: String, properties: AMQPProperties) async throws {
        try await channel.publish(body, exchange: exchange, routingKey: routingKey, properties: properties)
    }

    /// Deletes an exchange, ignoring errors.
    func deleteExchange(_ name: String) async {
        guard let deleting = try? await connection.openChannel() else { return }
        try? await deleting.deleteExchange(name)
        await deleting.close()
    }

    /// Takes one message (`basic.get`, auto-ack), or nil when there is none.
    func get(_ queue: String) async throws -> AMQPDelivery? {
        try await channel.get(queue: queue, noAck: true)
    }

    /// Waits up to `timeout` seconds for a message in `queue`.
    func waitForMessage(in queue: String, timeout: Double, _ what: String) async throws -> AMQPDelivery {
        let deadline = ContinuousClock.now + .milliseconds(Int64(timeout * 1000))
        while true {
            if let delivery = try await get(queue) { return delivery }
            guard ContinuousClock.now < deadline else {
                throw TimeoutError("no message in \(queue) within \(timeout) s: \(what)")
            }
            try await Task.sleep(for: .milliseconds(25))
        }
    }

    /// A passive declare: the queue's ready-message and consumer counts, or
    /// nil when it does not exist. On a channel of its own, as a 404 closes it.
    func queueInfo(_ queue: String) async throws -> AMQPChannel.QueueInfo? {
        try await connection.withChannel { check in
            do {
                return try await check.declareQueue(queue, passive: true)
            } catch let error as AMQPError where error.replyCode == 404 {
                return nil
            }
        }
    }

    /// Deletes queues, ignoring those that do not exist.
    func deleteQueues(_ queues: [String]) async {
        for queue in queues {
            guard let deleting = try? await connection.openChannel() else { return }
            _ = try? await deleting.deleteQueue(queue)
            await deleting.close()
        }
    }
}

struct TimeoutError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Polls `condition` every 25 ms until it holds, for at most `timeout`
/// seconds; throws ``TimeoutError`` naming `what` otherwise.
func waitUntil(
    _ what: @autoclosure () -> String, timeout: Double, _ condition: () async throws -> Bool
) async throws {
    let deadline = ContinuousClock.now + .milliseconds(Int64(timeout * 1000))
    while try await !condition() {
        guard ContinuousClock.now < deadline else { throw TimeoutError("timed out after \(timeout) s waiting for \(what())") }
        try await Task.sleep(for: .milliseconds(25))
    }
}

/// Runs `body`, failing with ``TimeoutError`` after `seconds`.
func withTimeout<T: Sendable>(
    _ seconds: Double, _ what: String, _ body: @escaping @Sendable () async throws -> T
) async throws -> T {
    try await withThrowingTaskGroup(of: T?.self) { group in
        group.addTask { try await body() }
        group.addTask {
            try await Task.sleep(for: .milliseconds(Int64(seconds * 1000)))
            return nil
        }
        defer { group.cancelAll() }
        guard let result = try await group.next() ?? nil else {
            throw TimeoutError("timed out after \(seconds) s: \(what)")
        }
        return result
    }
}
