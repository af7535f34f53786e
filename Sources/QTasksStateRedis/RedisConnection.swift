import CHiredis
import Foundation
import QTasksState

/// One hiredis connection (`redisContext`), blocking, with socket timeouts.
///
/// Not thread-safe: ``RedisStateStore`` (and `RedisResultStore` in
/// QTasksResultsRedis, hence package access) uses it from its own serial
/// dispatch queue only, never from Swift's cooperative pool. The context is freed in
/// `deinit`; a connection that failed once is dropped (hiredis' context is
/// unusable after an I/O or protocol error).
package final class RedisConnection {
    /// The connection broke (I/O error, end of stream, timeout, protocol
    /// error). `mayHaveApplied`: commands with effects had been written when
    /// it happened, so they may or may not have run.
    package struct Failure: Error {
        package var message: String
        package var mayHaveApplied: Bool
    }

    private let context: UnsafeMutablePointer<redisContext>
    /// When the current call's time is up (set with the socket timeouts):
    /// a read or write interrupted by a signal is retried with only the
    /// time left (``readReply(hasEffects:)``).
    private var deadline: ContinuousClock.Instant?

    private init(context: UnsafeMutablePointer<redisContext>) {
        self.context = context
    }

    deinit {
        redisFree(context)
    }

    /// Connects with `timeout` for the TCP connect and for every later socket
    /// read and write.
    ///
    /// - Throws: ``Failure`` with hiredis' error text.
    package static func connect(host: String, port: Int, timeout: Duration) throws(Failure) -> RedisConnection {
        let tv = Self.socketTime(timeout)
        guard let context = redisConnectWithTimeout(host, Int32(port), tv) else {
            throw Failure(message: "cannot allocate a hiredis context", mayHaveApplied: false)
        }
        let connection = RedisConnection(context: context)
        connection.deadline = .now + timeout
        if context.pointee.err != 0 {
            throw Failure(message: connection.errorText, mayHaveApplied: false)
        }
        guard redisSetTimeout(context, tv) == REDIS_OK else {
            throw Failure(message: "cannot set socket timeouts: \(connection.errorText)", mayHaveApplied: false)
        }
        return connection
    }

    /// Sets the socket read and write timeout from now on (each `read(2)`
    /// and `write(2)` hiredis makes waits at most this long).
    package func setTimeout(_ timeout: Duration) throws(Failure) {
        deadline = .now + timeout
        guard redisSetTimeout(context, Self.socketTime(timeout)) == REDIS_OK else {
            throw Failure(message: "cannot set socket timeouts: \(errorText)", mayHaveApplied: false)
        }
    }

    /// `timeout` as a `timeval`, at least 1 ms (0 would mean "no timeout"
    /// to the socket options).
    private static func socketTime(_ timeout: Duration) -> timeval {
        let timeout = max(timeout, .milliseconds(1))
        let (seconds, attoseconds) = timeout.components
        return timeval(tv_sec: Int(seconds), tv_usec: Int(attoseconds / 1_000_000_000_000))
    }

    /// Sends one command and waits for its reply.
    ///
    /// - Parameter hasEffects: whether the command changes data (it decides
    ///   ``Failure/mayHaveApplied`` should the connection break).
    package func command(_ arguments: [String], hasEffects: Bool = false) throws(Failure) -> RedisReply {
        try pipeline([arguments], hasEffects: hasEffects)[0]
    }

    /// Sends several commands in one write, then reads their replies in
    /// order (error replies are values, not thrown).
    package func pipeline(_ commands: [[String]], hasEffects: Bool = false) throws(Failure) -> [RedisReply] {
        for arguments in commands {
            try append(arguments)
        }
        var replies: [RedisReply] = []
        replies.reserveCapacity(commands.count)
        for _ in commands {
            let raw = try readReply(hasEffects: hasEffects)
            let reply = Self.copy(raw.assumingMemoryBound(to: redisReply.self))
            freeReplyObject(raw)
            replies.append(reply)
        }
        return replies
    }

    /// Sends commands already encoded in a ``RedisCommandBuffer`` in one
    /// write, then reads their replies in order (error replies are values).
    /// Cheaper than ``pipeline(_:hasEffects:)`` for large pipelines: one copy
    /// into hiredis' output buffer instead of an allocation per argument and
    /// hiredis' formatting of each.
    package func pipeline(_ commands: RedisCommandBuffer, hasEffects: Bool = false) throws(Failure) -> [RedisReply] {
        guard commands.count > 0 else { return [] }
        let status = commands.bytes.withUnsafeBufferPointer { buffer in
            buffer.withMemoryRebound(to: CChar.self) { characters in
                redisAppendFormattedCommand(context, characters.baseAddress, characters.count)
            }
        }
        guard status == REDIS_OK else {
            throw Failure(message: errorText, mayHaveApplied: false)
        }
        var replies: [RedisReply] = []
        replies.reserveCapacity(commands.count)
        for _ in 0..<commands.count {
            let raw = try readReply(hasEffects: hasEffects)
            let reply = Self.copy(raw.assumingMemoryBound(to: redisReply.self))
            freeReplyObject(raw)
            replies.append(reply)
        }
        return replies
    }

    /// The next reply: what `redisGetReply` does (write out what is
    /// buffered, then read until a whole reply is there), but within the
    /// call's deadline. hiredis retries a read or write that a signal
    /// interrupted (`EINTR`: the process stopped and continued, a frozen
    /// cgroup thawed) with the whole socket timeout each time, so repeated
    /// stops kept a call waiting far past its timeout; here a retry gets
    /// only the time left, and none is left after the deadline.
    private func readReply(hasEffects: Bool) throws(Failure) -> UnsafeMutableRawPointer {
        var raw: UnsafeMutableRawPointer?
        guard redisGetReplyFromReader(context, &raw) == REDIS_OK else {
            throw Failure(message: errorText, mayHaveApplied: hasEffects)
        }
        if let raw { return raw }
        var done: Int32 = 0
        var first = true
        while done == 0 {
            try keepDeadline(retrying: !first, hasEffects: hasEffects)
            first = false
            guard redisBufferWrite(context, &done) == REDIS_OK else {
                throw Failure(message: errorText, mayHaveApplied: hasEffects)
            }
        }
        first = true
        while raw == nil {
            try keepDeadline(retrying: !first, hasEffects: hasEffects)
            first = false
            guard redisBufferRead(context) == REDIS_OK, redisGetReplyFromReader(context, &raw) == REDIS_OK else {
                throw Failure(message: errorText, mayHaveApplied: hasEffects)
            }
        }
        return raw!
    }

    /// Before each read or write: fails once the deadline passed; before a
    /// second or later one, gives the socket only the time left (a
    /// `setsockopt` pair: a reply in one read costs nothing more).
    private func keepDeadline(retrying: Bool, hasEffects: Bool) throws(Failure) {
        guard let deadline else { return }
        let left = deadline - .now
        guard left >= .milliseconds(1) else {
            throw Failure(message: "no reply within the timeout", mayHaveApplied: hasEffects)
        }
        guard retrying else { return }
        guard redisSetTimeout(context, Self.socketTime(left)) == REDIS_OK else {
            throw Failure(message: "cannot set socket timeouts: \(errorText)", mayHaveApplied: hasEffects)
        }
    }

    /// Appends one command to hiredis' output buffer (binary safe, through
    /// `redisAppendCommandArgv`; the variadic `redisCommand` is not callable
    /// from Swift).
    private func append(_ arguments: [String]) throws(Failure) {
        let buffers = arguments.map { Array($0.utf8) }
        let lengths = buffers.map(\.count)
        // hiredis copies the arguments into its output buffer during the
        // call; these copies only need to live until it returns.
        let pointers: [UnsafeMutablePointer<CChar>] = buffers.map { bytes in
            let pointer = UnsafeMutablePointer<CChar>.allocate(capacity: max(bytes.count, 1))
            bytes.withUnsafeBytes { source in
                UnsafeMutableRawBufferPointer(start: pointer, count: bytes.count).copyMemory(from: source)
            }
            return pointer
        }
        defer { for pointer in pointers { pointer.deallocate() } }
        var argv: [UnsafePointer<CChar>?] = pointers.map { UnsafePointer($0) }
        let status = argv.withUnsafeMutableBufferPointer { argv in
            lengths.withUnsafeBufferPointer { lengths in
                redisAppendCommandArgv(context, Int32(argv.count), argv.baseAddress, lengths.baseAddress)
            }
        }
        guard status == REDIS_OK else {
            throw Failure(message: errorText, mayHaveApplied: false)
        }
    }

    /// hiredis' error text (`errstr`), or a generic one.
    private var errorText: String {
        let text = withUnsafeBytes(of: context.pointee.errstr) { bytes in
            String(decoding: bytes.prefix(while: { $0 != 0 }), as: UTF8.self)
        }
        if !text.isEmpty { return text }
        return context.pointee.err == REDIS_ERR_EOF
            ? "connection closed by the server" : "connection error \(context.pointee.err)"
    }

    private static func copy(_ reply: UnsafeMutablePointer<redisReply>) -> RedisReply {
        let r = reply.pointee
        func bytes() -> [UInt8] {
            guard let str = r.str, r.len > 0 else { return [] }
            return Array(UnsafeRawBufferPointer(start: str, count: r.len))
        }
        switch r.type {
        case REDIS_REPLY_STRING: return .string(bytes())
        case REDIS_REPLY_STATUS: return .status(String(decoding: bytes(), as: UTF8.self))
        case REDIS_REPLY_ERROR: return .error(String(decoding: bytes(), as: UTF8.self))
        case REDIS_REPLY_INTEGER: return .integer(Int64(r.integer))
        case REDIS_REPLY_ARRAY:
            guard let elements = r.element else { return .array([]) }
            return .array(
                (0..<r.elements).map { index in
                    elements[index].map(copy) ?? .nil
                })
        default: return .nil
        }
    }
}

/// Commands encoded in the Redis protocol (RESP arrays of bulk strings), to
/// send with `RedisConnection.pipeline` in one write: built argument by
/// argument, without an array per command.
///
/// ```swift
/// var commands = RedisCommandBuffer()
/// commands.command("HSET", "key", "field", "value")
/// commands.begin(argumentCount: 2 + 2 * fields.count)
/// commands.argument("HSET"); commands.argument(key)
/// for (name, value) in fields { commands.argument(name); commands.argument(value) }
/// ```
package struct RedisCommandBuffer: Sendable {
    package private(set) var bytes: [UInt8] = []
    /// How many commands the buffer holds.
    package private(set) var count = 0
    /// Arguments still due for the command begun last.
    private var pending = 0

    package init(reservingCapacity capacity: Int = 0) {
        bytes.reserveCapacity(capacity)
    }

    /// Starts a command of `argumentCount` arguments (its name included);
    /// exactly that many ``argument(_:)`` calls must follow.
    package mutating func begin(argumentCount: Int) {
        precondition(pending == 0, "the previous command lacks \(pending) arguments")
        precondition(argumentCount > 0, "a command has at least its name")
        bytes.append(UInt8(ascii: "*"))
        appendDecimal(argumentCount)
        bytes.append(0x0D)
        bytes.append(0x0A)
        pending = argumentCount
        count += 1
    }

    /// One argument of the command begun last (binary safe).
    package mutating func argument(_ text: String) {
        var text = text
        text.withUTF8 { argument(bytes: $0) }
    }

    /// One argument of the command begun last (binary safe).
    package mutating func argument(bytes argument: UnsafeBufferPointer<UInt8>) {
        precondition(pending > 0, "more arguments than the command was begun with")
        pending -= 1
        bytes.append(UInt8(ascii: "$"))
        appendDecimal(argument.count)
        bytes.append(0x0D)
        bytes.append(0x0A)
        bytes.append(contentsOf: argument)
        bytes.append(0x0D)
        bytes.append(0x0A)
    }

    /// A whole command.
    package mutating func command(_ arguments: String...) {
        command(arguments)
    }

    /// A whole command.
    package mutating func command(_ arguments: [String]) {
        begin(argumentCount: arguments.count)
        for argument in arguments { self.argument(argument) }
    }

    private mutating func appendDecimal(_ value: Int) {
        if value < 10 {
            bytes.append(UInt8(ascii: "0") + UInt8(value))
            return
        }
        bytes.append(contentsOf: String(value).utf8)
    }
}

/// The end of one store operation's time budget (its configured timeout,
/// counted from the call): the wait for the store's serial queue, the
/// connect, the socket reads and writes and a reconnect all come out of it,
/// so a frozen server (SIGSTOP: the kernel still accepts connections and
/// writes, nothing answers) fails each call within its timeout instead of
/// once per socket operation, and calls queued behind a stuck one fail at
/// their own deadline instead of waiting their turn.
package struct RedisDeadline: Sendable {
    package let instant: ContinuousClock.Instant
    package let timeout: Duration

    package init(timeout: Duration, from now: ContinuousClock.Instant = .now) {
        self.timeout = timeout
        self.instant = now + timeout
    }

    /// The time left, zero when it has passed.
    package var remaining: Duration {
        max(.zero, instant - .now)
    }

    /// Whether less than a millisecond is left.
    package var hasPassed: Bool {
        remaining < .milliseconds(1)
    }

    /// "timed out after 5 s": for messages.
    package var expiredText: String {
        let seconds = Double(timeout.components.seconds) + Double(timeout.components.attoseconds) / 1e18
        return "timed out after \(String(format: "%g", seconds)) s"
    }
}

/// Runs `body` with SIGPIPE blocked on the calling thread, then discards a
/// SIGPIPE that `body` raised there and restores the signal mask.
///
/// hiredis writes with `write(2)`, which raises SIGPIPE (default action:
/// kill the process) when Redis has closed the connection. Blocking it on
/// this thread only turns that into an `EPIPE` error, without changing the
/// process-wide disposition that the application may own.
package func withSIGPIPEBlocked<T>(_ body: () throws -> T) rethrows -> T {
    #if os(Linux)
        var pipeSet = sigset_t()
        sigemptyset(&pipeSet)
        sigaddset(&pipeSet, SIGPIPE)
        var previous = sigset_t()
        pthread_sigmask(SIG_BLOCK, &pipeSet, &previous)
        defer {
            var pending = sigset_t()
            if sigismember(&previous, SIGPIPE) == 0, sigpending(&pending) == 0, sigismember(&pending, SIGPIPE) == 1 {
                var noWait = timespec(tv_sec: 0, tv_nsec: 0)
                _ = sigtimedwait(&pipeSet, nil, &noWait)
            }
            pthread_sigmask(SIG_SETMASK, &previous, nil)
        }
    #endif
    return try body()
}
