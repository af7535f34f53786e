import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// `posix_spawn` with what every child of a test needs and what it must
/// not inherit.
public enum Spawn {
    /// Starts `executable` with `arguments` and the full environment
    /// `environment`; returns its pid.
    ///
    /// The child starts with no blocked signals and default handlers for
    /// SIGTERM, SIGINT, SIGPIPE, SIGHUP and SIGCHLD: the test runner blocks
    /// some of them, a child inherits the mask, and a server or worker would
    /// then ignore the SIGTERM meant to stop it.
    ///
    /// - Parameter actions: file actions set up by the caller (descriptors).
    /// - Returns: the child's pid, or the `posix_spawn` error number.
    public static func start(
        _ executable: String, _ arguments: [String], environment: [String: String],
        actions: inout posix_spawn_file_actions_t
    ) -> Result<pid_t, POSIXError> {
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var noSignals = sigset_t()
        sigemptyset(&noSignals)
        posix_spawnattr_setsigmask(&attributes, &noSignals)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for signal in [SIGTERM, SIGINT, SIGPIPE, SIGHUP, SIGCHLD] { sigaddset(&defaults, signal) }
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))

        let argv: [UnsafeMutablePointer<CChar>?] = ([executable] + arguments).map { strdup($0) } + [nil]
        let envp: [UnsafeMutablePointer<CChar>?] = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            argv.forEach { free($0) }
            envp.forEach { free($0) }
        }
        var pid: pid_t = 0
        let status = posix_spawn(&pid, executable, &actions, &attributes, argv, envp)
        guard status == 0 else { return .failure(POSIXError(POSIXErrorCode(rawValue: status) ?? .EINVAL)) }
        return .success(pid)
    }
}
