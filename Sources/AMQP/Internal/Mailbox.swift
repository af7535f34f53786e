import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Work for the connection's owner thread.
typealias Command = @Sendable (ConnectionCore) -> Void

/// The queue through which other threads hand work to a connection's owner
/// thread, with a wake-up pipe the owner polls together with the socket so
/// that an ack or a publish wakes it at once instead of after its idle
/// timeout. (A pipe rather than an eventfd: Glibc's Swift module does not
/// export `sys/eventfd.h`, and one byte per wake-up costs the same.)
final class Mailbox: Sendable {
    private struct State {
        var commands: [Command] = []
        /// True while a wake-up byte is outstanding: later posts skip the
        /// write syscall until the owner has taken the commands.
        var wakePending = false
        var closed = false
    }

    private let state = Mutex(State())
    /// The end the owner thread polls.
    let wakeFD: Int32
    /// The end other threads write to.
    let writeFD: Int32

    init() throws {
        var fds: [Int32] = [-1, -1]
        guard pipe(&fds) == 0 else {
            throw AMQPError(.connectionFailed, "pipe failed: \(String(cString: strerror(errno)))")
        }
        for fd in fds {
            _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
            _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
        }
        wakeFD = fds[0]
        writeFD = fds[1]
    }

    deinit {
        close(wakeFD)
        close(writeFD)
    }

    /// Queues a command; false when the owner thread has already stopped.
    func post(_ command: @escaping Command) -> Bool {
        let mustWake: Bool? = state.withLock { state in
            if state.closed { return nil }
            state.commands.append(command)
            if state.wakePending { return false }
            state.wakePending = true
            return true
        }
        guard let mustWake else { return false }
        if mustWake {
            var one: UInt8 = 1
            _ = write(writeFD, &one, 1)
        }
        return true
    }

    var hasCommands: Bool {
        state.withLock { !$0.commands.isEmpty }
    }

    func takeAll() -> [Command] {
        state.withLock { state in
            state.wakePending = false
            let commands = state.commands
            state.commands.removeAll(keepingCapacity: true)
            return commands
        }
    }

    /// Refuses further posts and returns what was still queued.
    func closeAndTakeAll() -> [Command] {
        state.withLock { state in
            state.closed = true
            let commands = state.commands
            state.commands = []
            return commands
        }
    }

    func drainWakeups() {
        var buffer = [UInt8](repeating: 0, count: 64)
        while read(wakeFD, &buffer, buffer.count) == buffer.count {}
    }
}
