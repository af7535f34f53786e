import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// TCP ports on this machine, for tests that decide whether a server is
/// there and for servers they start themselves.
public enum TCPPort {
    /// True when something accepts a TCP connection at `host:port`
    /// (`localhost` is read as 127.0.0.1; IPv4 only).
    public static func isOpen(host: String, port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(truncatingIfNeeded: port).bigEndian)
        inet_pton(AF_INET, host == "localhost" ? "127.0.0.1" : host, &address.sin_addr)
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0
            }
        }
    }
}
