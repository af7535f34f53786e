import AMQP
import Foundation
import Logging
import QTasks
import Synchronization

/// A ``TaskEventSink`` that publishes task events and worker heartbeats to
/// RabbitMQ's events exchange, for live consumers (`qtasks events`, a
/// dashboard): put it in ``TaskEventRecording/sinks``.
///
/// - The exchange (``EventsExchange/name``, `qtasks.events` by default) is
///   a durable topic exchange, declared on each new connection.
/// - Each event is one message: its JSON form (``TaskEvent``) as the body,
///   `content_type` `application/json`, transient (delivery mode 1),
///   routing key ``TaskEvent/routingKey`` (`task.<kind>.<task name>`).
///   Heartbeats go the same way with ``WorkerHeartbeat/routingKey``
///   (`worker.heartbeat`, `worker.offline` for the last one).
/// - Messages that no queue is bound for are dropped by RabbitMQ: the
///   exchange is a live feed, not a store.
/// - A batch is published with publisher confirms (pipelined) and the call
///   returns once the broker confirmed all of it. When a publish fails, or
///   is not confirmed within ``publishTimeout``, the call throws
///   (`BrokerError`) and the worker's recorder hands the same batch again
///   later, so consumers may see an event twice; the next call opens a new
///   connection.
///
/// It has its own AMQP connection (named `qtasks events`), apart from the
/// worker's consuming and publishing ones, so that a slow or blocked
/// events exchange never holds up acks or results. The connection opens
/// on first use (or ``connect()``) and tries the endpoints of the
/// configuration in turn, TLS included.
///
/// ```swift
/// let events = RabbitMQEventPublisher(configuration: brokerConfiguration)
/// configuration.events = TaskEventRecording(sinks: [events])
/// // ... run the worker, then:
/// await events.close()
/// ```
public final class RabbitMQEventPublisher: TaskEventSink, CustomStringConvertible, Sendable {
    /// Where to connect (the broker's configuration; only its endpoints
    /// are used).
    public let configuration: RabbitMQBrokerConfiguration
    /// The topic exchange events go to.
    public let exchange: String
    /// How long a batch may wait for the broker's confirms before the call
    /// throws and the connection is dropped. Default 10 s.
    public let publishTimeout: Duration
    private let slot: ConnectionSlot
    private let logger: Logger
    /// The id of the connection the exchange was declared on.
    private let declaredOn = Mutex<UInt64?>(nil)

    /// - Parameters:
    ///   - configuration: the broker to publish to; nothing connects until
    ///     the first event (or ``connect()``).
    ///   - exchange: the topic exchange's name (at most 255 bytes).
    ///   - publishTimeout: see ``publishTimeout``.
    public init(
        configuration: RabbitMQBrokerConfiguration, exchange: String = EventsExchange.name,
        publishTimeout: Duration = .seconds(10), logger: Logger = Logger(label: "qtasks.events")
    ) {
        self.configuration = configuration
        self.exchange = exchange
        self.publishTimeout = publishTimeout
        self.logger = logger
        self.slot = ConnectionSlot(
            endpoints: configuration.endpoints, role: "events", confirmWindow: configuration.confirmWindow,
            logger: logger)
    }

    /// The exchange and the broker, password redacted: how logs and the
    /// `sink` metric label name this sink.
    public var description: String {
        "events exchange \(exchange) at \(configuration.redactedURL)"
    }

    /// Connects and declares the exchange now, to fail fast on a wrong URL
    /// or password.
    ///
    /// - Throws: `BrokerError` (`.connectionFailed`, or `.refused` when the
    ///   exchange exists with another type or the user may not declare it).
    public func connect() async throws {
        _ = try await readyChannel()
    }

    public func record(_ events: [TaskEvent]) async throws {
        // The hand-written JSON form (a non-finite number in a result is
        // written as null, as JSONValue writes it): JSONEncoder would cost
        // more than the rest of a task's processing.
        try await publish(events.map { message(TaskRecordJSON.encode($0), routingKey: $0.routingKey) })
    }

    public func recordHeartbeat(_ heartbeat: WorkerHeartbeat) async throws {
        try await publish([message(try Self.encoder().encode(heartbeat), routingKey: heartbeat.routingKey)])
    }

    /// Closes the connection, for good: later calls throw `BrokerError`
    /// `.closed`. Call it after the worker stopped (its last heartbeat is
    /// sent at shutdown).
    public func close() async {
        await slot.close()
    }

    // MARK: - Publishing

    private static func encoder() -> JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }

    private func message(_ body: Data, routingKey: String) -> AMQPOutgoingMessage {
        message(Array(body), routingKey: routingKey)
    }

    private func message(_ body: [UInt8], routingKey: String) -> AMQPOutgoingMessage {
        AMQPOutgoingMessage(
            body, exchange: exchange, routingKey: EventsExchange.boundedRoutingKey(routingKey),
            properties: AMQPProperties(contentType: "application/json", deliveryMode: AMQPProperties.transientDeliveryMode))
    }

    private func publish(_ messages: [AMQPOutgoingMessage]) async throws {
        guard !messages.isEmpty else { return }
        let channel = try await readyChannel()
        let timeout = publishTimeout
        do {
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await Self.publish(messages, on: channel) }
                group.addTask {
                    try await Task.sleep(for: timeout)
                    // Fails the pending confirms, so that the publish above
                    // returns; the next call connects again.
                    await channel.connection.close()
                    throw BrokerError(
                        .timeout, "the broker did not confirm \(messages.count) events within \(Seconds.logValue(timeout)) s")
                }
                try await group.next()
                group.cancelAll()
            }
        } catch {
            // Declared again on the next call: a 404 may mean the exchange
            // was deleted.
            declaredOn.withLock { $0 = nil }
            await slot.invalidate(channel)
            throw MessageMapping.brokerError(error)
        }
    }

    /// Publishes and throws the first message's failure, if any.
    private static func publish(_ messages: [AMQPOutgoingMessage], on channel: AMQPChannel) async throws {
        let outcomes = try await channel.publish(batch: messages)
        for case .failure(let error) in outcomes { throw error }
    }

    /// The open channel, with the exchange declared on its connection.
    private func readyChannel() async throws -> AMQPChannel {
        do {
            let channel = try await slot.channel()
            let connection = channel.connection
            if declaredOn.withLock({ $0 }) != connection.id {
                // A short-lived channel: a refusal (406, 403) closes it, not
                // the publishing one.
                try await connection.withChannel { declaring in
                    try await EventsExchange.declare(exchange, on: declaring)
                }
                declaredOn.withLock { $0 = connection.id }
            }
            return channel
        } catch {
            throw MessageMapping.brokerError(error)
        }
    }
}
