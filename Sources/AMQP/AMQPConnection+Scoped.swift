import Logging

/// Scoped lifetimes: a channel or a connection that is closed, and the close
/// awaited, however the body exits.
extension AMQPConnection {
    /// Opens a channel, runs `body` with it, and closes the channel when
    /// `body` returns or throws (cancellation included), awaiting the
    /// broker's `close-ok`.
    ///
    /// Use it for short-lived channels, such as a declaration the broker may
    /// refuse (which closes its channel) or a `basic.get` whose
    /// unacknowledged messages must go back to the queue: they return when
    /// the channel closes, before this method returns. `body` must not keep
    /// the channel after it returns.
    ///
    /// - Parameters:
    ///   - isolation: the caller's actor, so that `body` runs there and need
    ///     not be `Sendable`; leave the default.
    ///   - body: runs with the open channel.
    /// - Returns: what `body` returns.
    /// - Throws: ``AMQPError`` when the channel cannot be opened (the
    ///   connection is closed, or out of channels), else what `body` throws.
    @discardableResult
    public func withChannel<Result>(
        isolation: isolated (any Actor)? = #isolation,
        _ body: (AMQPChannel) async throws -> Result
    ) async throws -> Result {
        let channel = try await openChannel()
        let result: Result
        do {
            result = try await body(channel)
        } catch {
            await channel.close()
            throw error
        }
        await channel.close()
        return result
    }

    /// Connects, runs `body` with the connection, and closes it when `body`
    /// returns or throws (cancellation included), awaiting the broker's
    /// `close-ok`.
    ///
    /// - Parameters:
    ///   - configuration: where to connect; see ``AMQPConfiguration``.
    ///   - logger: receives connection events.
    ///   - isolation: the caller's actor, so that `body` runs there and need
    ///     not be `Sendable`; leave the default.
    ///   - body: runs with the open connection; must not keep it after it
    ///     returns.
    /// - Returns: what `body` returns.
    /// - Throws: as ``connect(_:logger:)`` when the connection cannot be
    ///   opened, else what `body` throws.
    @discardableResult
    public static func withConnection<Result>(
        _ configuration: AMQPConfiguration = AMQPConfiguration(),
        logger: Logger = Logger(label: "qtasks.amqp"),
        isolation: isolated (any Actor)? = #isolation,
        _ body: (AMQPConnection) async throws -> Result
    ) async throws -> Result {
        let connection = try await connect(configuration, logger: logger)
        let result: Result
        do {
            result = try await body(connection)
        } catch {
            await connection.close()
            throw error
        }
        await connection.close()
        return result
    }
}
