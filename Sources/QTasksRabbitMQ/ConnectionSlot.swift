import AMQP
import Logging
import QTasks
import Synchronization

/// One AMQP connection with one long-lived channel, opened on first use and
/// opened again after it was lost (the connection) or closed by the broker
/// (the channel).
///
/// With several endpoints (the nodes of a cluster) a connect tries them in
/// turn: the first connect from the head of the list, a reconnect after a
/// loss from the node after the lost one (which is tried last).
actor ConnectionSlot {
    private let endpoints: [AMQPConfiguration]
    /// The endpoint to try first: the one that last accepted a connection.
    private var preferred = 0
    private let logger: Logger
    private let confirmWindow: Int?
    private var connection: AMQPConnection?
    private var channel: AMQPChannel?
    private var connecting: Task<(AMQPConnection, AMQPChannel, Int), any Error>?
    /// Set by `close()`, for good: a closed broker opens no connection that
    /// nothing would close.
    private var closed = false
    /// The open channel, readable without a hop onto this actor: publishing
    /// takes it once per message.
    private nonisolated let ready = Mutex<AMQPChannel?>(nil)

    /// - Parameter confirmWindow: puts the channel in confirm mode with this
    ///   window; `nil` leaves confirms off.
    /// - Parameter endpoints: where to connect, in order; at least one.
    init(endpoints: [AMQPConfiguration], role: String, confirmWindow: Int?, logger: Logger) {
        precondition(!endpoints.isEmpty, "a connection needs at least one endpoint")
        self.endpoints = endpoints.map { endpoint in
            var endpoint = endpoint
            if endpoint.connectionName == nil { endpoint.connectionName = "qtasks \(role)" }
            return endpoint
        }
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
        guard !closed else { throw Self.closedError }
        if let connecting {
            let (connection, channel, _) = try await connecting.value
            return (connection, channel)
        }
        let task = Task { [endpoints, preferred, confirmWindow, logger, connection] in
            let live: (connection: AMQPConnection, endpoint: Int)
            if let connection, connection.isOpen {
                live = (connection, preferred)
            } else {
                // After a loss, the node that was lost is tried last: it may
                // be down or hung (then each try costs a connect timeout).
                let start = connection == nil ? preferred : (preferred + 1) % endpoints.count
                live = try await Failover.connect(endpoints, startingAt: start, logger: logger)
            }
            let channel = try await live.connection.openChannel()
            if let confirmWindow { try await channel.enableConfirms(window: confirmWindow) }
            return (live.connection, channel, live.endpoint)
        }
        connecting = task
        defer { connecting = nil }
        let (connection, channel, endpoint) = try await task.value
        // Closed while connecting: this connection is nobody's.
        guard !closed else {
            await connection.close()
            throw Self.closedError
        }
        preferred = endpoint
        self.connection = connection
        self.channel = channel
        ready.withLock { $0 = channel }
        return (connection, channel)
    }

    private static let closedError = BrokerError(.closed, "the broker is closed (by close() or at the end of its scope)")

    func close() async {
        closed = true
        connecting?.cancel()
        if let connection { await connection.close() }
        connection = nil
        channel = nil
        ready.withLock { $0 = nil }
    }
}
