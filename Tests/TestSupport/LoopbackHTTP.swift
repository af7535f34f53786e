import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// One HTTP/1.1 request to a server on 127.0.0.1 and its answer, over a
/// plain socket: just enough HTTP for chromedriver.
///
/// Why not URLSession: chromedriver writes its header lines without a space
/// after the colon (`Content-Length:252`), which HTTP allows and which
/// FoundationNetworking up to Swift 6.3 refuses, failing every request
/// with `NSURLErrorDomain -1` "Failed writing header" (fixed by
/// swiftlang/swift-corelibs-foundation#5527, not in 6.3.1).
enum LoopbackHTTP {
    struct Response: Sendable {
        let status: Int
        let body: Data
    }

    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    /// Sends the request and reads the answer on a thread of its own: a
    /// page load can hold a command for many seconds, which must not block
    /// a thread of the cooperative pool (two of them on a 2-core machine).
    ///
    /// - Parameter timeout: seconds for each send and each read on the
    ///   socket.
    static func exchange(port: Int, method: String, path: String, body: Data?, timeout: Double) async throws -> Response {
        try await withCheckedThrowingContinuation { continuation in
            Thread {
                continuation.resume(with: Result {
                    try exchangeBlocking(port: port, method: method, path: path, body: body, timeout: timeout)
                })
            }.start()
        }
    }

    private static func exchangeBlocking(port: Int, method: String, path: String, body: Data?, timeout: Double) throws -> Response {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw Failure(description: "socket: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var limit = timeval(tv_sec: Int(timeout), tv_usec: Int(timeout.truncatingRemainder(dividingBy: 1) * 1_000_000))
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))

        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(truncatingIfNeeded: port).bigEndian)
        inet_pton(AF_INET, "127.0.0.1", &address.sin_addr)
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else { throw Failure(description: "connect to 127.0.0.1:\(port): \(String(cString: strerror(errno)))") }

        var request = "\(method) \(path) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nAccept: application/json\r\nConnection: close\r\n"
        if let body {
            request += "Content-Type: application/json; charset=utf-8\r\nContent-Length: \(body.count)\r\n"
        }
        try sendAll(fd, Data((request + "\r\n").utf8) + (body ?? Data()))
        return try readResponse(fd)
    }

    private static func sendAll(_ fd: Int32, _ data: Data) throws {
        try data.withUnsafeBytes { (bytes: UnsafeRawBufferPointer) in
            var offset = 0
            while offset < bytes.count {
                let sent = send(fd, bytes.baseAddress! + offset, bytes.count - offset, Int32(MSG_NOSIGNAL))
                if sent < 0 {
                    if errno == EINTR { continue }
                    throw Failure(description: "send: \(String(cString: strerror(errno)))")
                }
                offset += sent
            }
        }
    }

    /// Reads the status line and headers, then `Content-Length` bytes of
    /// body, or up to the end of the connection when there is none.
    private static func readResponse(_ fd: Int32) throws -> Response {
        var received = Data()
        var buffer = [UInt8](repeating: 0, count: 65_536)
        /// false at the end of the connection.
        func readMore() throws -> Bool {
            while true {
                let count = recv(fd, &buffer, buffer.count, 0)
                if count > 0 {
                    received.append(contentsOf: buffer[0..<count])
                    return true
                }
                if count == 0 { return false }
                if errno == EINTR { continue }
                let reason = errno == EAGAIN || errno == EWOULDBLOCK ? "timed out" : String(cString: strerror(errno))
                throw Failure(description: "reading the answer: \(reason)")
            }
        }
        let separator = Data("\r\n\r\n".utf8)
        var headerEnd = received.range(of: separator)
        while headerEnd == nil {
            guard try readMore() else { throw Failure(description: "connection closed before the end of the headers") }
            headerEnd = received.range(of: separator)
        }
        let head = String(decoding: received[..<headerEnd!.lowerBound], as: UTF8.self)
        var lines = head.components(separatedBy: "\r\n")
        let statusLine = lines.removeFirst().split(separator: " ")
        guard statusLine.count >= 2, statusLine[0].hasPrefix("HTTP/"), let status = Int(statusLine[1]) else {
            throw Failure(description: "not an HTTP answer: \(head.prefix(200))")
        }
        var headers: [String: String] = [:]
        for line in lines {
            guard let colon = line.firstIndex(of: ":") else { continue }
            // RFC 9110: optional whitespace around the value.
            headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        if headers["transfer-encoding"]?.lowercased().contains("chunked") == true {
            throw Failure(description: "chunked answers are not supported")
        }
        let bodyStart = headerEnd!.upperBound
        if let length = headers["content-length"].flatMap(Int.init) {
            while received.count - bodyStart < length {
                guard try readMore() else { throw Failure(description: "connection closed after \(received.count - bodyStart) of \(length) bytes") }
            }
            return Response(status: status, body: Data(received[bodyStart..<bodyStart + length]))
        }
        while try readMore() {}
        return Response(status: status, body: Data(received[bodyStart...]))
    }
}
