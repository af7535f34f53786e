import Foundation
import Synchronization
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// RabbitMQ's management HTTP API (the `rabbitmq_management` plugin,
/// https://www.rabbitmq.com/docs/management#http-api): queue counts that
/// AMQP does not give (unacknowledged messages) and message rates, queue
/// arguments and effective policies, and policies themselves.
///
/// Reads `GET /api/queues/...` and `GET /api/policies/...`; the only write
/// is `PUT /api/policies/{vhost}/{name}` (``putPolicy(_:virtualHost:)``,
/// which needs a user tagged `policymaker` or `administrator`).
public struct RabbitMQManagementAPI: Sendable {
    /// `scheme://host:port` plus any path prefix, without credentials and
    /// without a trailing `/api`.
    private let base: URLComponents
    private let authorization: String
    /// How long one request may take in all. Default 15 s.
    public var timeout: Duration

    /// - Parameter url: `http(s)://user:pass@host:15672` (a trailing `/api`,
    ///   the form RabbitMQ's docs show, is accepted); without credentials
    ///   `guest:guest`.
    /// - Throws: ``ManagementAPIError`` when the URL is not an http(s) URL
    ///   with a host.
    public init(url: String, timeout: Duration = .seconds(15)) throws {
        guard var components = URLComponents(string: url), components.scheme == "http" || components.scheme == "https",
            components.host?.isEmpty == false
        else {
            throw ManagementAPIError("the management URL must be http(s)://user:pass@host:port")
        }
        let user = components.user.flatMap { $0.removingPercentEncoding } ?? "guest"
        let password = components.password.flatMap { $0.removingPercentEncoding } ?? "guest"
        components.user = nil
        components.password = nil
        var path = components.percentEncodedPath
        while path.hasSuffix("/") { path.removeLast() }
        if path.hasSuffix("/api") { path.removeLast(4) }
        components.percentEncodedPath = path
        components.query = nil
        self.base = components
        self.authorization = "Basic " + Data("\(user):\(password)".utf8).base64EncodedString()
        self.timeout = timeout
    }

    /// The URL without its credentials, for messages.
    public var redactedURL: String { base.string ?? "(management URL)" }

    /// One queue's counts and rates: `GET /api/queues/{vhost}/{name}`.
    ///
    /// - Returns: nil when the queue does not exist (HTTP 404).
    /// - Throws: ``ManagementAPIError`` (unreachable, 401, other statuses,
    ///   not JSON).
    public func queue(_ name: String, virtualHost: String) async throws -> QueueStatistics? {
        let path = "/api/queues/" + Self.encode(virtualHost) + "/" + Self.encode(name)
        guard let object = try await get(path, allowingNotFound: true) as? [String: Any] else { return nil }
        return QueueStatistics(object)
    }

    /// Every queue of a virtual host: `GET /api/queues/{vhost}`.
    ///
    /// - Throws: ``ManagementAPIError``.
    public func queues(virtualHost: String) async throws -> [QueueStatistics] {
        let path = "/api/queues/" + Self.encode(virtualHost)
        guard let objects = try await get(path, allowingNotFound: false) as? [[String: Any]] else {
            throw ManagementAPIError("GET \(redactedURL)\(path): not a JSON array")
        }
        return objects.compactMap(QueueStatistics.init)
    }

    static func encode(_ text: String) -> String {
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-._~")
        return text.addingPercentEncoding(withAllowedCharacters: allowed) ?? text
    }

    func get(_ path: String, allowingNotFound: Bool) async throws -> Any? {
        try await request("GET", path, body: nil, allowingNotFound: allowingNotFound)
    }

    /// One request; `body` is sent as JSON. Any 2xx is success: the parsed
    /// JSON answer, or nil for an empty one (204 No Content).
    func request(_ method: String, _ path: String, body: Data?, allowingNotFound: Bool) async throws -> Any? {
        var components = base
        components.percentEncodedPath = base.percentEncodedPath + path
        guard let url = components.url else { throw ManagementAPIError("bad management URL") }
        let location = "\(method) \(url.absoluteString)"
        var request = URLRequest(url: url, timeoutInterval: Double(timeout.components.seconds))
        request.httpMethod = method
        request.setValue(authorization, forHTTPHeaderField: "Authorization")
        if let body {
            request.httpBody = body
            request.setValue("application/json", forHTTPHeaderField: "Content-Type")
        }
        let (data, response) = try await Self.fetch(request, location: location, timeout: timeout)
        let status = (response as? HTTPURLResponse)?.statusCode ?? 0
        if status == 404 && allowingNotFound { return nil }
        guard (200..<300).contains(status) else {
            let hint =
                switch status {
                case 401: " (the user or password of the management URL was refused)"
                case 403: " (the management user lacks a tag or permission for this: policies need policymaker or administrator)"
                default: ""
                }
            // RabbitMQ explains a refused write in "reason" (a bad pattern,
            // an unknown policy key); a 401's "Login failed" adds nothing.
            let reason = status == 401 ? nil : (try? JSONSerialization.jsonObject(with: data) as? [String: Any])?["reason"] as? String
            throw ManagementAPIError("\(location): HTTP \(status)\(hint)\(reason.map { ": \($0)" } ?? "")")
        }
        if data.isEmpty { return nil }
        do {
            return try JSONSerialization.jsonObject(with: data)
        } catch {
            throw ManagementAPIError("\(location): the answer is not JSON")
        }
    }

    /// Refuses a 401's authentication challenge and remembers it: the
    /// request already carried its credentials. Without a delegate that
    /// answers the challenge, swift-corelibs-foundation leaves the task
    /// waiting for ever (its issue #5456; RabbitMQ's 401 carries
    /// `WWW-Authenticate: Basic`), and answering "default handling" hangs
    /// the same way; refusing cancels the task, which ``fetch`` reports as
    /// the 401 it was.
    private final class ChallengeRefuser: NSObject, URLSessionTaskDelegate, Sendable {
        let challenged = Mutex(false)

        func urlSession(
            _ session: URLSession, task: URLSessionTask, didReceive challenge: URLAuthenticationChallenge,
            completionHandler: @escaping @Sendable (URLSession.AuthChallengeDisposition, URLCredential?) -> Void
        ) {
            challenged.withLock { $0 = true }
            completionHandler(.cancelAuthenticationChallenge, nil)
        }
    }

    /// The request, bounded by `timeout` in all whatever the session does.
    private static func fetch(_ request: URLRequest, location: String, timeout: Duration) async throws -> (Data, URLResponse) {
        let refuser = ChallengeRefuser()
        let session = URLSession(configuration: .ephemeral, delegate: refuser, delegateQueue: nil)
        defer { session.invalidateAndCancel() }
        do {
            return try await withThrowingTaskGroup(of: (Data, URLResponse)?.self) { group in
                group.addTask { try await session.data(for: request) }
                group.addTask {
                    try await Task.sleep(for: timeout)
                    return nil
                }
                defer { group.cancelAll() }
                guard let answer = try await group.next() ?? nil else {
                    throw ManagementAPIError("\(location): no answer within \(timeout)")
                }
                return answer
            }
        } catch where refuser.challenged.withLock({ $0 }) {
            throw ManagementAPIError("\(location): HTTP 401 (the user or password of the management URL was refused)")
        } catch let error as ManagementAPIError {
            throw error
        } catch {
            throw ManagementAPIError("\(location): \(error.localizedDescription)")
        }
    }
}

/// A queue as the management API reports it.
public struct QueueStatistics: Sendable, Hashable {
    public var name: String
    /// `messages_ready`.
    public var ready: Int
    /// `messages_unacknowledged`.
    public var unacknowledged: Int
    public var consumers: Int
    /// Messages published into the queue per second, averaged by RabbitMQ
    /// over its sample window (`message_stats.publish_details.rate`); nil
    /// when RabbitMQ has no sample yet.
    public var publishRate: Double?
    /// Messages delivered or fetched per second
    /// (`message_stats.deliver_get_details.rate`).
    public var deliverRate: Double?
    public var isExclusive: Bool
    public var isAutoDelete: Bool

    public init(
        name: String, ready: Int, unacknowledged: Int, consumers: Int, publishRate: Double? = nil,
        deliverRate: Double? = nil, isExclusive: Bool = false, isAutoDelete: Bool = false
    ) {
        self.name = name
        self.ready = ready
        self.unacknowledged = unacknowledged
        self.consumers = consumers
        self.publishRate = publishRate
        self.deliverRate = deliverRate
        self.isExclusive = isExclusive
        self.isAutoDelete = isAutoDelete
    }

    init?(_ object: [String: Any]) {
        guard let name = object["name"] as? String else { return nil }
        func int(_ key: String) -> Int { (object[key] as? NSNumber)?.intValue ?? 0 }
        let stats = object["message_stats"] as? [String: Any]
        func rate(_ key: String) -> Double? {
            ((stats?[key] as? [String: Any])?["rate"] as? NSNumber)?.doubleValue
        }
        self.init(
            name: name, ready: int("messages_ready"), unacknowledged: int("messages_unacknowledged"),
            consumers: int("consumers"), publishRate: rate("publish_details"), deliverRate: rate("deliver_get_details"),
            isExclusive: (object["exclusive"] as? Bool) ?? false, isAutoDelete: (object["auto_delete"] as? Bool) ?? false)
    }
}

/// The management API could not be asked, or refused.
public struct ManagementAPIError: Error, Sendable, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}
