import Foundation
import Logging
import Synchronization

/// A connection to a RabbitMQ broker over rabbitmq-c.
///
/// Each connection has one owner thread that makes every rabbitmq-c call for
/// it (rabbitmq-c connections must never be used from two threads). Methods
/// of this type and of ``AMQPChannel`` hand their work to that thread and
/// await the outcome; the thread sleeps in `poll` on the socket and on a
/// wake-up pipe, so posted work runs at once, and wakes at least every half
/// heartbeat interval so heartbeats are sent and missed ones detected.
///
/// Use separate connections for consuming and for publishing: when RabbitMQ
/// throttles a publishing connection (flow control, resource alarms), acks on
/// the same connection would stall too.
///
/// Thread safety: `@unchecked Sendable` is sound because all mutable state
/// lives in `ConnectionCore`, which only the owner thread touches, and in
/// `Mailbox`, which is behind a mutex.
public final class AMQPConnection: @unchecked Sendable {
    private static let counter = Atomic<UInt64>(0)

    /// Unique in this process; changes on every new connection, so work
    /// tied to an earlier connection can be recognised.
    public let id: UInt64
    public let configuration: AMQPConfiguration
    let mailbox: Mailbox
    private let logger: Logger
    private let openFlag = Atomic<Bool>(true)
    private let closedSignal = ClosedSignal()

    private init(configuration: AMQPConfiguration, logger: Logger) throws {
        self.id = Self.counter.add(1, ordering: .relaxed).newValue
        self.configuration = configuration
        self.logger = logger
        self.mailbox = try Mailbox()
    }

    /// Connects and logs in.
    ///
    /// - Parameters:
    ///   - configuration: where to connect; see ``AMQPConfiguration``.
    ///   - logger: receives connection events (blocked, closed by broker).
    /// - Throws: ``AMQPError`` within `configuration.connectTimeout`:
    ///   `.connectionFailed` for a closed port, an unknown host, a missing
    ///   vhost (`530 NOT_ALLOWED`) or a handshake timeout;
    ///   `.authenticationFailed` for wrong credentials (`403 ACCESS_REFUSED`).
    public static func connect(
        _ configuration: AMQPConfiguration = AMQPConfiguration(),
        logger: Logger = Logger(label: "qtasks.amqp")
    ) async throws -> AMQPConnection {
        let connection = try AMQPConnection(configuration: configuration, logger: logger)
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            let thread = Thread { connection.ownerThreadMain(opened: continuation) }
            thread.name = "amqp-\(connection.id)"
            thread.start()
        }
        return connection
    }

    /// True until the connection closes (by either side or by failure).
    public var isOpen: Bool { openFlag.load(ordering: .acquiring) }

    /// Opens a new channel.
    /// - Throws: ``AMQPError`` if the connection is closed or out of channels.
    public func openChannel() async throws -> AMQPChannel {
        let (id, number) = try await perform { core in
            let channel = try core.openChannel()
            return (channel.id, channel.number)
        }
        return AMQPChannel(connection: self, id: id, number: number)
    }

    /// Closes the connection (`connection.close`, waiting for the broker's
    /// `close-ok` up to the RPC timeout). Unacknowledged deliveries return to
    /// their queues. Safe to call more than once.
    public func close() async {
        _ = try? await perform { core in core.closeConnection() }
        _ = await closed()
    }

    /// Waits until the connection has closed and returns why: `nil` after
    /// ``close()``, the error otherwise.
    public func closed() async -> AMQPError? {
        await closedSignal.wait()
    }

    /// Called on the owner thread with the reason when the broker blocks this
    /// connection (`connection.blocked`, a resource alarm) and with `nil` when
    /// it unblocks it.
    public func onBlockedChange(_ handler: @escaping @Sendable (String?) -> Void) async throws {
        try await perform { core in core.blockedHandler = handler }
    }

    // MARK: Owner thread

    /// Runs `body` on the owner thread and returns its outcome.
    func perform<T: Sendable>(_ body: @escaping @Sendable (ConnectionCore) throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            let posted = mailbox.post { core in
                continuation.resume(with: Result { try body(core) })
            }
            if !posted {
                continuation.resume(throwing: AMQPError(.connectionClosed, "the connection is closed"))
            }
        }
    }

    /// Runs `body` on the owner thread; `body` resumes the continuation
    /// itself, possibly later (publisher confirms).
    func performDeferred(_ body: @escaping @Sendable (ConnectionCore, CheckedContinuation<Void, any Error>) -> Void)
        async throws
    {
        try await withCheckedThrowingContinuation { continuation in
            let posted = mailbox.post { core in body(core, continuation) }
            if !posted {
                continuation.resume(throwing: AMQPError(.connectionClosed, "the connection is closed"))
            }
        }
    }

    private func ownerThreadMain(opened: CheckedContinuation<Void, any Error>) {
        let core: ConnectionCore
        do {
            core = try ConnectionCore.open(configuration, logger: logger, connectionID: id)
        } catch {
            openFlag.store(false, ordering: .releasing)
            _ = mailbox.closeAndTakeAll()
            closedSignal.signal(error as? AMQPError)
            opened.resume(throwing: error)
            return
        }
        core.owner = self
        logger.debug(
            "AMQP connection open",
            metadata: ["url": "\(configuration.redactedURL)", "heartbeat": "\(core.heartbeat)"])
        opened.resume()
        runLoop(core)
        openFlag.store(false, ordering: .releasing)
        // Anything posted after the loop ended fails with the close reason.
        for command in mailbox.closeAndTakeAll() { command(core) }
        closedSignal.signal(core.closedLocally ? nil : core.closeError)
    }

    private func runLoop(_ core: ConnectionCore) {
        let idleMilliseconds = Int32(core.heartbeat > 0 ? min(1000, core.heartbeat * 500) : 1000)
        var fds = [
            pollfd(fd: core.socketDescriptor, events: Int16(POLLIN), revents: 0),
            pollfd(fd: mailbox.wakeFD, events: Int16(POLLIN), revents: 0),
        ]
        while core.isOpen {
            for command in mailbox.takeAll() {
                command(core)
            }
            core.flushAcks()
            guard core.isOpen else { break }
            core.pumpFrames()
            guard core.isOpen else { break }
            // rabbitmq-c may hold frames already read from the socket, which
            // poll would never report again.
            if mailbox.hasCommands || core.hasBufferedFrames { continue }
            fds[0].revents = 0
            fds[1].revents = 0
            let ready = poll(&fds, 2, idleMilliseconds)
            if ready > 0 && fds[1].revents != 0 {
                mailbox.drainWakeups()
            }
        }
    }
}

/// A one-shot signal carrying why the connection closed.
private final class ClosedSignal: Sendable {
    private struct State {
        var result: AMQPError?? = nil
        var waiters: [CheckedContinuation<AMQPError?, Never>] = []
    }
    private let state = Mutex(State())

    func signal(_ error: AMQPError?) {
        let waiters = state.withLock { state -> [CheckedContinuation<AMQPError?, Never>] in
            guard state.result == nil else { return [] }
            state.result = .some(error)
            defer { state.waiters = [] }
            return state.waiters
        }
        for waiter in waiters { waiter.resume(returning: error) }
    }

    func wait() async -> AMQPError? {
        await withCheckedContinuation { continuation in
            let ready: AMQPError?? = state.withLock { state in
                if let result = state.result { return .some(result) }
                state.waiters.append(continuation)
                return nil
            }
            if let ready { continuation.resume(returning: ready) }
        }
    }
}
