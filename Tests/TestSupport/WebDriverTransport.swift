import Foundation

/// The HTTP side of the W3C WebDriver protocol: a JSON body in, the `value`
/// of the JSON answer out, an error answer thrown as ``WebDriverError``.
///
/// A handful of JSON requests to 127.0.0.1, so no client library: the test
/// targets stay free of NIO. Not URLSession either, which cannot read
/// chromedriver's answers on Linux (``LoopbackHTTP`` says why).
struct WebDriverTransport: Sendable {
    /// chromedriver's port on 127.0.0.1.
    let port: Int

    /// Sends `method path` (path from the root, e.g. `/session/x/url`)
    /// and returns the answer's `value`.
    ///
    /// - Parameters:
    ///   - body: the JSON body; POST always sends one (`{}` when nil):
    ///     chromedriver refuses a POST without ("missing command parameters").
    ///   - timeout: seconds; a new session and a page load can take long on
    ///     a loaded machine, so the default is generous.
    /// - Throws: ``WebDriverError`` with chromedriver's error and message,
    ///   or with error `transport` when there was no JSON answer.
    @discardableResult
    func send(_ method: String, _ path: String, _ body: JSON? = nil, timeout: Double = 90) async throws -> JSON {
        let command = "\(method) \(path)"
        let response: LoopbackHTTP.Response
        do {
            let data = method == "POST" ? try JSONEncoder().encode(body ?? [:]) : nil
            response = try await LoopbackHTTP.exchange(port: port, method: method, path: path, body: data, timeout: timeout)
        } catch {
            throw WebDriverError(error: "transport", message: "\(error)", command: command)
        }
        guard let answer = try? JSONDecoder().decode(JSON.self, from: response.body) else {
            let text = String(decoding: response.body.prefix(500), as: UTF8.self)
            throw WebDriverError(error: "transport", message: "HTTP \(response.status), not JSON: \(text)", command: command)
        }
        let value = answer["value"] ?? .null
        if let error = value["error"]?.string {
            throw WebDriverError(error: error, message: value["message"]?.string ?? "(no message)", command: command)
        }
        guard (200..<300).contains(response.status) else {
            throw WebDriverError(error: "transport", message: "HTTP \(response.status): \(answer)", command: command)
        }
        return value
    }
}
