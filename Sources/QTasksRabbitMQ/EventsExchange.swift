import AMQP
import Logging
import QTasks

/// The events exchange: where workers publish task events and heartbeats
/// (``RabbitMQEventPublisher``) and where live consumers read them
/// (``tail(configuration:exchange:pattern:logger:_:)``, `qtasks events`).
///
/// A durable topic exchange. Routing keys: `task.<kind>.<task name>` for
/// task events (``TaskEvent/routingKey``; the kinds are `sent`, `received`,
/// `started`, `succeeded`, `failed`, `retried`, `dead_lettered`,
/// `cancelled`, `requeued`), `worker.heartbeat` and `worker.offline` for
/// heartbeats. Bind with a topic pattern: `#` for everything,
/// `task.failed.#` for every failure, `task.*.add` for every event of
/// `add`, `worker.*` for heartbeats.
public enum EventsExchange {
    /// `qtasks.events`.
    public static let name = "qtasks.events"

    /// A message read from the exchange.
    public struct Message: Sendable, Hashable {
        /// Its routing key (`task.succeeded.add`, `worker.heartbeat`).
        public var routingKey: String
        /// Its body: the JSON form of a ``TaskEvent`` (routing key
        /// `task.…`) or of a ``WorkerHeartbeat`` (`worker.…`).
        public var body: [UInt8]

        public init(routingKey: String, body: [UInt8]) {
            self.routingKey = routingKey
            self.body = body
        }
    }

    /// Declares the exchange: durable, topic.
    ///
    /// - Throws: `AMQPError` `.channelClosed` (406 when it exists with
    ///   another type, 403 without the permission).
    static func declare(_ exchange: String, on channel: AMQPChannel) async throws {
        try await channel.declareExchange(exchange, type: ExchangeType.topic.name, durable: true)
    }

    /// A routing key cut to AMQP's 255 bytes at a character boundary (a
    /// task name can be longer).
    static func boundedRoutingKey(_ key: String) -> String {
        guard key.utf8.count > 255 else { return key }
        var end = key.utf8.index(key.utf8.startIndex, offsetBy: 255)
        while end > key.startIndex, key.utf8[end] & 0xC0 == 0x80 { end = key.utf8.index(before: end) }
        return String(key[..<end])
    }

    /// Reads the exchange live: connects (the first endpoint that accepts),
    /// declares the exchange, binds a server-named, exclusive, auto-delete
    /// queue to it with `pattern`, consumes it (no acks), runs `body` with
    /// the messages, and closes the connection (the queue goes with it)
    /// however `body` exits.
    ///
    /// Only events published after the binding arrive: the exchange keeps
    /// nothing. `body` starts once the binding is in place. The sequence
    /// ends with an error when the connection is lost.
    ///
    /// - Parameters:
    ///   - pattern: a topic binding key: `#` (everything), `task.failed.#`.
    /// - Returns: what `body` returned.
    /// - Throws: `BrokerError` when connecting, declaring or binding fails
    ///   (`.connectionFailed`, `.refused`), else what `body` throws.
    @discardableResult
    public static func tail<Result>(
        configuration: RabbitMQBrokerConfiguration, exchange: String = EventsExchange.name, pattern: String = "#",
        logger: Logger = Logger(label: "qtasks.events"),
        isolation: isolated (any Actor)? = #isolation,
        _ body: (AsyncThrowingStream<Message, any Error>) async throws -> Result
    ) async throws -> Result {
        let endpoints = configuration.endpoints.map { endpoint in
            var endpoint = endpoint
            if endpoint.connectionName == nil { endpoint.connectionName = "qtasks events tail" }
            return endpoint
        }
        let connection: AMQPConnection
        do {
            connection = try await Failover.connect(endpoints, startingAt: 0, logger: logger).connection
        } catch {
            throw MessageMapping.brokerError(error)
        }
        let result: Result
        do {
            let messages = try await subscribe(on: connection, exchange: exchange, pattern: pattern)
            result = try await body(messages)
        } catch {
            await connection.close()
            throw error
        }
        await connection.close()
        return result
    }

    private static func subscribe(on connection: AMQPConnection, exchange: String, pattern: String) async throws
        -> AsyncThrowingStream<Message, any Error>
    {
        do {
            let channel = try await connection.openChannel()
            try await declare(exchange, on: channel)
            let queue = try await channel.declareQueue("", durable: false, exclusive: true, autoDelete: true).name
            try await channel.bindQueue(queue, exchange: exchange, routingKey: pattern)
            let (stream, continuation) = AsyncThrowingStream<Message, any Error>.makeStream()
            _ = try await channel.consume(queue: queue, noAck: true, exclusive: true) { event in
                switch event {
                case .delivery(let delivery):
                    continuation.yield(Message(routingKey: delivery.routingKey, body: delivery.body))
                case .ended(nil):
                    continuation.finish()
                case .ended(let error?):
                    continuation.finish(throwing: MessageMapping.brokerError(error))
                }
            }
            return stream
        } catch {
            throw MessageMapping.brokerError(error)
        }
    }
}
