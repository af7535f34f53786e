import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A process as /proc shows it: its pid and its start time, so that a pid
/// the kernel has since given to another process is never signalled.
struct ProcessIdentity: Hashable, Sendable {
    let pid: pid_t
    let startTime: UInt64

    /// True while this very process exists and is not a zombie.
    var isAlive: Bool {
        guard let stat = ProcessTree.stat(pid) else { return false }
        return stat.startTime == startTime && stat.state != "Z" && stat.state != "X"
    }

    /// Sends `signal` if this process is still the one that was seen.
    func signal(_ signal: Int32) {
        if isAlive { kill(pid, signal) }
    }
}

/// The processes below a pid, read from /proc (Linux).
///
/// Why: chromedriver starts chromium, which starts its zygotes, renderers
/// and GPU and network processes. When chromedriver dies first they are
/// re-parented to init and nothing of ours would stop them; reading the
/// tree while chromedriver is alive lets ``ChromeDriver`` stop exactly
/// these pids afterwards, never processes found by name (another test, or
/// another checkout, may be running a browser of its own).
enum ProcessTree {
    struct Stat {
        let parent: pid_t
        let state: Character
        let startTime: UInt64
    }

    /// Fields of /proc/<pid>/stat: state (3), ppid (4), starttime (22).
    static func stat(_ pid: pid_t) -> Stat? {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let close = text.lastIndex(of: ")")  // the command name may hold spaces and parentheses
        else { return nil }
        let fields = text[text.index(after: close)...].split(separator: " ")
        guard fields.count > 19, let state = fields[0].first, let parent = pid_t(fields[1]),
            let startTime = UInt64(fields[19])
        else { return nil }
        return Stat(parent: parent, state: state, startTime: startTime)
    }

    static func identity(_ pid: pid_t) -> ProcessIdentity? {
        stat(pid).map { ProcessIdentity(pid: pid, startTime: $0.startTime) }
    }

    /// Every living process whose chain of parents leads to `root`
    /// (`root` itself excluded).
    static func descendants(of root: pid_t) -> [ProcessIdentity] {
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: "/proc") else { return [] }
        var children: [pid_t: [ProcessIdentity]] = [:]
        for entry in entries {
            guard let pid = pid_t(entry), let stat = stat(pid) else { continue }
            children[stat.parent, default: []].append(ProcessIdentity(pid: pid, startTime: stat.startTime))
        }
        var found: [ProcessIdentity] = []
        var pending = [root]
        while let parent = pending.popLast() {
            for child in children[parent] ?? [] where !found.contains(child) {
                found.append(child)
                pending.append(child.pid)
            }
        }
        return found
    }

    /// Every living process whose command line contains `text`: for a
    /// unique temporary path, the processes started for it that left the
    /// tree (Chromium's crash handlers detach from their parent at once,
    /// but name its profile and HOME in their arguments).
    static func mentioning(_ text: String) -> [ProcessIdentity] {
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: "/proc") else { return [] }
        let needle = Data(text.utf8)
        return entries.compactMap { entry in
            guard let pid = pid_t(entry), pid != getpid(),
                let commandLine = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline"),
                commandLine.range(of: needle) != nil
            else { return nil }
            return identity(pid)
        }
    }
}
