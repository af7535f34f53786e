import AMQP
import Logging
import Synchronization

/// One AMQP connection with one long-lived channel, opened on first use and
/// opened again after it was lost (the connection) or closed by the broker
/// (the channel).
actor ConnectionSlot {
    private let configuration: AMQPConfiguration
    private let logger: Logger
    private let confirmWindow: Int?
    private var connection: AMQPConnection?
    private var channel: AMQPChannel?
    private var connecting: Task<(AMQPConnection, AMQPChannel), any Error>?
    /// The open channel, readable without a hop onto this actor: publishing
    /// takes it once per message.
    private nonisolated let ready = Mutex<AMQPChannel?>(nil)

    /// - Parameter confirmWindow: puts the channel in confirm mode with this
    ///   window; `nil` leaves confirms off.
    init(configuration: AMQPConfiguration, role: String, confirmWindow: Int?, logger: Logger) {
        var configuration = configuration
        if configuration.connectionName == nil { configuration.connectionName = "qtasks \(role)" }
        self.configuration = configuration
        self.confirmWindow = confirmWindow
        var logger = logger
        logger[metadataKey: "connection"] = "\(role)"
        self.logger = logger
    }

    /// The open channel, connecting first when needed.
    nonisolated func channel() async throws -> AMQPChannel {
        if let channel = ready.withLock({ $0 }), channel.connection.isOpen { return channel }
        return try await openChannel()
    }

    private func openChannel() async throws -> AMQPChannel {
        if let channel, channel.connection.isOpen { return channel }
        return try await reopen().1
    }

    /// The open connection, connecting first when needed.
    func connection() async throws -> AMQPConnection {
        if let connection, connection.isOpen { return connection }
        return try await reopen().0
    }

    /// Forgets `stale` so that the next call opens a new channel.
    func invalidate(_ stale: AMQPChannel) {
        if channel?.number == stale.number && channel?.connection === stale.connection {
            channel = nil
            ready.withLock { $0 = nil }
        }
    }

    private func reopen() async throws -> (AMQPConnection, AMQPChannel) {
        if let connecting { return try await connecting.value }
        let task = Task { [configuration, confirmWindow, logger, connection] in
            let live: AMQPConnection
            if let connection, connection.isOpen {
                live = connection
            } else {
                live = try await AMQPConnection.connect(configuration, logger: logger)
                logger.info("connected to RabbitMQ", metadata: ["url": "\(configuration.redactedURL)"])
            }
            let channel = try await live.openChannel()
            if let confirmWindow { try await channel.enableConfirms(window: confirmWindow) }
            return (live, channel)
        }
        connecting = task
        defer { connecting = nil }
        let (connection, channel) = try await task.value
        self.connection = connection
        self.channel = channel
        ready.withLock { $0 = channel }
        return (connection, channel)
    }

    func close() async {
        connecting?.cancel()
        if let connection { await connection.close() }
        connection = nil
        channel = nil
        ready.withLock { $0 = nil }
    }
}
