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
/// Lifetime: the owner thread holds only the connection's core (its
/// rabbitmq-c state) and its mailbox, never this object. A connection that is
/// dropped without ``close()`` posts a close to its owner thread from
/// `deinit`, so the thread ends and the socket closes; ``close()`` (or
/// ``withConnection(_:logger:isolation:_:)``) is still the way to know when
/// that has happened. Channels and deliveries keep their connection alive.
///
/// Thread safety: every stored property is immutable or `Sendable` (the
/// core, the only mutable state, is confined to the owner thread).
public final class AMQPConnection: Sendable {
    private static let counter = Atomic<UInt64>(0)

    /// Unique in this process; changes on every new connection, so work
    /// tied to an earlier connection can be recognised.
    public let id: UInt64
    public let configuration: AMQPConfiguration
    /// What the owner thread shares with this handle.
    private let runtime: OwnerThread
    var mailbox: Mailbox { runtime.mailbox }

    private init(configuration: AMQPConfiguration, logger: Logger) throws {
        let id = Self.counter.add(1, ordering: .relaxed).newValue
        self.id = id
        self.configuration = configuration
        self.runtime = OwnerThread(id: id, configuration: configuration, logger: logger, mailbox: try Mailbox())
    }

    deinit {
        // Dropped without close(): the owner thread would otherwise poll an
        // open socket for ever. Not awaited (deinit cannot); a closed mailbox
        // (close() was called, or the connection failed) refuses the post.
        _ = runtime.mailbox.post { core in core.closeConnection() }
    }

    /// Connects and logs in.
    ///
    /// - Parameters:
    ///   - configuration: where to connect; see ``AMQPConfiguration``.
    ///   - logger: receives connection events (blocked, closed by broker).
    /// - Throws: ``AMQPError`` within `configuration.connectTimeout`:
    ///   `.connectionFailed` for a closed port, an unknown host, a missing
    ///   vhost (`530 NOT_ALLOWED`) or a handshake timeout;
    ///   `.authenticationFailed` for wrong credentials (`403 ACCESS_REFUSED`);
    ///   with TLS (``AMQPConfiguration/tls``) `.tlsCertificateUntrusted`,
    ///   `.tlsCertificateExpired`, `.tlsHostnameMismatch` when the broker's
    ///   certificate fails a check, `.tlsHandshakeFailed` for a plain AMQP
    ///   port (or a client certificate the broker refused), and
    ///   `.invalidArgument` for a CA, certificate or key file that cannot be
    ///   read. A plain `amqp://` connect to a TLS port fails with
    ///   `.connectionFailed` and says so.
    public static func connect(
        _ configuration: AMQPConfiguration = AMQPConfiguration(),
        logger: Logger = Logger(label: "qtasks.amqp")
    ) async throws -> AMQPConnection {
        let connection = try AMQPConnection(configuration: configuration, logger: logger)
        let runtime = connection.runtime
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            // The thread captures the runtime only, so that dropping the
            // connection reaches deinit.
            Thread { runtime.main(opened: continuation) }.start()
        }
        // Deliveries carry an AMQPChannel, which needs the connection: the
        // core gets a weak reference, before any later command (a consume)
        // can run, since the mailbox keeps commands in order.
        _ = connection.mailbox.post { [weak connection] core in core.owner = connection }
        return connection
    }

    /// True until the connection closes (by either side or by failure).
    public var isOpen: Bool { runtime.isOpen }

    /// Opens a new channel.
    /// - Throws: ``AMQPError`` if the connection is closed or out of channels.
    public func openChannel() async throws -> AMQPChannel {
        let (id, number, lifetime) = try await perform { core in
            let channel = try core.openChannel()
            return (channel.id, channel.number, channel.lifetime)
        }
        return AMQPChannel(connection: self, id: id, number: number, lifetime: lifetime)
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
        await runtime.closedSignal.wait()
    }

    /// The socket and wake-up pipe of this connection, for tests that check
    /// they are released; empty if the connection never opened.
    var fileDescriptors: [Int32] { runtime.fileDescriptors.withLock { $0 } }

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
}

/// A connection's owner thread and what it shares with the public handle:
/// everything the thread needs, and nothing that keeps the handle alive.
private final class OwnerThread: Sendable {
    let id: UInt64
    let configuration: AMQPConfiguration
    let logger: Logger
    let mailbox: Mailbox
    let closedSignal = ClosedSignal()
    let fileDescriptors = Mutex<[Int32]>([])
    private let openFlag = Atomic<Bool>(true)

    init(id: UInt64, configuration: AMQPConfiguration, logger: Logger, mailbox: Mailbox) {
        self.id = id
        self.configuration = configuration
        self.logger = logger
        self.mailbox = mailbox
    }

    var isOpen: Bool { openFlag.load(ordering: .acquiring) }

    /// The thread's body: open, serve the mailbox and the socket until the
    /// connection closes, then fail what is still queued. The core (and with
    /// it the rabbitmq-c connection and its socket) is freed when this
    /// returns.
    func main(opened: CheckedContinuation<Void, any Error>) {
        nameThread("amqp-\(id)")
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
        fileDescriptors.withLock { $0 = [core.socketDescriptor, mailbox.wakeFD, mailbox.writeFD] }
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

    /// Names the calling thread for ps, top, gdb and /proc/<pid>/task/<tid>/
    /// comm (15 bytes at most). Foundation's `Thread.name` does not reach
    /// the kernel on Linux, and Glibc's Swift module hides
    /// `pthread_setname_np` (a `_GNU_SOURCE` function); the kernel takes
    /// the name from /proc/thread-self/comm too.
    private func nameThread(_ name: String) {
        let fd = open("/proc/thread-self/comm", O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else { return }
        defer { close(fd) }
        let bytes = Array(name.utf8.prefix(15))
        _ = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
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
