import Foundation
import QTasks
import Synchronization
import Testing
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// A `qtasks dashboard` process of a test, on a free port.
struct DashboardProcess: Sendable {
    let process: ChildProcess
    /// `http://127.0.0.1:<port>` (no trailing slash).
    let baseURL: String
}

/// An HTTP answer.
struct HTTPAnswer: Sendable, CustomStringConvertible {
    var status: Int
    var headers: [String: String]
    var body: Data

    var text: String { String(decoding: body, as: UTF8.self) }
    var json: JSONValue? { try? JSONDecoder().decode(JSONValue.self, from: body) }
    var description: String { "HTTP \(status): \(text.prefix(2000))" }
}

enum HTTP {
    /// One request, no redirects followed, no credentials answered: what
    /// the server said.
    static func request(
        _ url: String, method: String = "GET", headers: [String: String] = [:], body: String? = nil, timeout: Double = 20
    ) async throws -> HTTPAnswer {
        var request = URLRequest(url: URL(string: url)!, timeoutInterval: timeout)
        request.httpMethod = method
        for (name, value) in headers { request.setValue(value, forHTTPHeaderField: name) }
        if let body { request.httpBody = Data(body.utf8) }
        let refuser = ChallengeRefuser()
        let session = URLSession(configuration: .ephemeral, delegate: refuser, delegateQueue: nil)
        defer { session.finishTasksAndInvalidate() }
        let data: Data
        let response: URLResponse
        do {
            (data, response) = try await session.data(for: request)
        } catch let error as URLError where error.code == .cancelled {
            // swift-corelibs-foundation hands a 401 with a challenge to the
            // delegate only, and the refusal cancels the task: report the
            // 401 with the challenge Foundation parsed from its header.
            guard let space = refuser.challenge.withLock({ $0 }) else { throw error }
            let scheme = space.authenticationMethod == NSURLAuthenticationMethodHTTPBasic ? "Basic" : space.authenticationMethod
            return HTTPAnswer(status: 401, headers: ["www-authenticate": "\(scheme) realm=\"\(space.realm ?? "")\""], body: Data())
        }
        let http = response as! HTTPURLResponse
        var fields: [String: String] = [:]
        for (key, value) in http.allHeaderFields { fields[String(describing: key).lowercased()] = String(describing: value) }
        return HTTPAnswer(status: http.statusCode, headers: fields, body: data)
    }

    static func basic(_ user: String, _ password: String) -> [String: String] {
        ["Authorization": "Basic " + Data("\(user):\(password)".utf8).base64EncodedString()]
    }

    /// Answers a 401's challenge by not answering it, so the 401 comes back
    /// as the response (swift-corelibs-foundation otherwise waits).
    final class ChallengeRefuser: NSObject, URLSessionTaskDelegate, Sendable {
        let challenge = Mutex<URLProtectionSpace?>(nil)

        func urlSession(
            _ session: URLSession, task: URLSessionTask, didReceive challenge: URLAuthenticationChallenge,
            completionHandler: @escaping @Sendable (URLSession.AuthChallengeDisposition, URLCredential?) -> Void
        ) {
            self.challenge.withLock { $0 = challenge.protectionSpace }
            completionHandler(.cancelAuthenticationChallenge, nil)
        }
    }
}

extension TestScope {
    /// Starts `qtasks dashboard --port 0 …` and waits for the address it
    /// prints.
    func startDashboard(_ arguments: [String], environment: [String: String] = [:], timeout: Double = 30) async throws
        -> DashboardProcess
    {
        let process = try spawn(
            IntegrationEnvironment.cliExecutable,
            ["dashboard", "--url", IntegrationEnvironment.url, "--port", "0"] + arguments, environment: environment)
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            let output = (try? String(contentsOf: process.stdoutURL, encoding: .utf8)) ?? ""
            if let line = output.split(separator: "\n").first(where: { $0.hasPrefix("qtasks dashboard: http://") }) {
                var url = String(line.dropFirst("qtasks dashboard: ".count))
                while url.hasSuffix("/") { url.removeLast() }
                return DashboardProcess(process: process, baseURL: url)
            }
            if !process.isRunning {
                throw ChildProcessError("the dashboard exited: \(process.exitStatus.map { "\($0)" } ?? "?")\n\(process.stderrTail())")
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw ChildProcessError("the dashboard printed no address within \(timeout) s\n\(process.stderrTail())")
    }
}

/// Polls `body` until it returns a value, for at most `timeout` seconds.
func eventually<T>(
    _ what: String, timeout: Double = 20, _ body: () async throws -> T?
) async throws -> T {
    let deadline = Date().addingTimeInterval(timeout)
    var lastError: (any Error)?
    while Date() < deadline {
        do {
            if let value = try await body() { return value }
        } catch {
            lastError = error
        }
        try await Task.sleep(for: .milliseconds(200))
    }
    throw ChildProcessError("\(what): not within \(timeout) s\(lastError.map { " (last error: \($0))" } ?? "")")
}
