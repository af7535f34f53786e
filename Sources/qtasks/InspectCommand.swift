import ArgumentParser
import Foundation
import Synchronization
import Logging
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import QTasksRabbitMQ

/// `qtasks inspect [QUEUE...]`: ready, unacked and consumer counts.
struct InspectCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inspect",
        abstract: "List task queues with their ready, unacked and consumer counts.",
        discussion: """
            For each QUEUE (default: default) prints the queue itself, its dead-letter queue QUEUE.dlq \
            and its retry queues QUEUE.retry.<ms> (every delay step the worker can use is probed); \
            queues that do not exist are skipped, except a named QUEUE, which is shown as missing.

            Ready and consumer counts come over AMQP (a passive queue.declare). AMQP has no unacked \
            count: it is shown as n/a unless --management-url names RabbitMQ's management HTTP API \
            (the rabbitmq_management plugin), e.g. http://guest:guest@127.0.0.1:15672, which is then \
            asked for messages_ready, messages_unacknowledged and consumers of each queue.

            Exit status: 0, also when a named queue is missing; 4 the broker (or the management API) \
            could not be reached.
            """)

    @OptionGroup var broker: BrokerOptions

    @Argument(help: "Task queues to inspect (default: default).")
    var queues: [String] = []

    @Option(help: "RabbitMQ management API base URL with credentials, http://user:pass@host:15672, for unacked counts.")
    var managementURL: String?

    @Flag(help: "Print a JSON array of {queue, kind, exists, ready, unacked, consumers} instead of a table.")
    var json = false

    struct Row {
        var queue: String
        var kind: String
        var exists: Bool
        var ready: Int?
        var unacked: Int?
        var consumers: Int?
    }

    func validate() throws {
        for queue in queues where queue.isEmpty || queue.utf8.count > 255 {
            throw ValidationError("a queue name must be 1 to 255 bytes")
        }
        if let managementURL {
            guard let url = URL(string: managementURL), url.scheme == "http" || url.scheme == "https", url.host != nil else {
                throw ValidationError("--management-url must be http(s)://user:pass@host:port")
            }
        }
    }

    /// Every `<queue>.retry.<ms>` name the worker can declare.
    static let retryMilliseconds: [Int] = {
        var values = Set<Int>()
        var scale = 1.0
        while scale <= Double(RetryDelays.maximumMilliseconds) {
            for step in [1, 1.5, 2, 3, 4, 5, 6, 8] {
                let value = Int((step * scale).rounded())
                if value >= 5 && value < RetryDelays.maximumMilliseconds { values.insert(value) }
            }
            scale *= 10
        }
        values.insert(RetryDelays.maximumMilliseconds)
        return values.sorted()
    }()

    func run() async throws {
        // Probing missing queues is expected (404s): only errors are logged.
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = .error
            return handler
        }
        let names = queues.isEmpty ? ["default"] : queues
        let admin = try await broker.connectAdmin()
        // connectAdmin has already refused a malformed URL.
        let virtualHost = (try? RabbitMQBrokerConfiguration(url: broker.resolvedURL))?.connection.virtualHost ?? "/"
        var rows: [Row] = []
        do {
            for name in names {
                var candidates: [(String, String)] = [(name, "queue"), (DeadLetterQueueAdmin.deadLetterQueue(for: name), "dlq")]
                if !name.hasSuffix(".dlq") {
                    candidates += Self.retryMilliseconds.map { (RetryDelays.queueName(for: name, milliseconds: $0), "retry") }
                }
                for (queue, kind) in candidates where queue.utf8.count <= 255 {
                    if let status = try await admin.status(queue) {
                        rows.append(Row(queue: queue, kind: kind, exists: true, ready: status.ready, consumers: status.consumers))
                    } else if kind == "queue" {
                        rows.append(Row(queue: queue, kind: kind, exists: false))
                    }
                }
            }
        } catch {
            printError("qtasks: \(error)")
            await admin.close()
            throw ExitStatus.brokerFailure
        }
        await admin.close()
        if let managementURL {
            do {
                for index in rows.indices where rows[index].exists {
                    let counts = try await Self.managementCounts(
                        base: managementURL, vhost: virtualHost, queue: rows[index].queue)
                    rows[index].ready = counts.ready
                    rows[index].unacked = counts.unacked
                    rows[index].consumers = counts.consumers
                }
            } catch {
                printError("qtasks: management API: \((error as? ManagementError)?.description ?? error.localizedDescription)")
                throw ExitStatus.brokerFailure
            }
        }
        if json {
            let objects: [[String: Any]] = rows.map { row in
                [
                    "queue": row.queue, "kind": row.kind, "exists": row.exists,
                    "ready": row.ready.map { $0 as Any } ?? NSNull(),
                    "unacked": row.unacked.map { $0 as Any } ?? NSNull(),
                    "consumers": row.consumers.map { $0 as Any } ?? NSNull(),
                ]
            }
            let data = try JSONSerialization.data(withJSONObject: objects, options: [.prettyPrinted, .sortedKeys])
            print(String(decoding: data, as: UTF8.self))
        } else {
            print(Self.table(rows))
            if managementURL == nil && rows.contains(where: \.exists) {
                print("unacked: n/a (needs --management-url)")
            }
        }
        fflush(nil)
    }

    static func table(_ rows: [Row]) -> String {
        let header = ["QUEUE", "KIND", "READY", "UNACKED", "CONSUMERS"]
        let cells: [[String]] = rows.map { row in
            guard row.exists else { return [row.queue, row.kind, "missing", "-", "-"] }
            return [
                row.queue, row.kind, row.ready.map(String.init) ?? "-", row.unacked.map(String.init) ?? "n/a",
                row.consumers.map(String.init) ?? "-",
            ]
        }
        // Names left-aligned, numbers right-aligned.
        return TextTable.render(header: header, rows: cells, rightAligned: [2, 3, 4])
    }

    struct ManagementError: Error, CustomStringConvertible {
        var description: String
    }

    /// Refuses a 401's authentication challenge and remembers it: the
    /// request already carried its credentials. Without a delegate that
    /// answers the challenge, swift-corelibs-foundation leaves the task
    /// waiting for ever (its issue #5456; RabbitMQ's 401 carries
    /// `WWW-Authenticate: Basic`), and answering "default handling" hangs
    /// the same way; refusing cancels the task, which ``fetch(_:location:)``
    /// reports as the 401 it was.
    final class ChallengeRefuser: NSObject, URLSessionTaskDelegate, Sendable {
        let challenged = Mutex(false)

        func urlSession(
            _ session: URLSession, task: URLSessionTask, didReceive challenge: URLAuthenticationChallenge,
            completionHandler: @escaping @Sendable (URLSession.AuthChallengeDisposition, URLCredential?) -> Void
        ) {
            challenged.withLock { $0 = true }
            completionHandler(.cancelAuthenticationChallenge, nil)
        }
    }

    /// The request, bounded by 15 s in all whatever the session does.
    static func fetch(_ request: URLRequest, location: String) async throws -> (Data, URLResponse) {
        let refuser = ChallengeRefuser()
        let session = URLSession(configuration: .ephemeral, delegate: refuser, delegateQueue: nil)
        defer { session.invalidateAndCancel() }
        do {
            return try await withThrowingTaskGroup(of: (Data, URLResponse)?.self) { group in
                group.addTask { try await session.data(for: request) }
                group.addTask {
                    try await Task.sleep(for: .seconds(15))
                    return nil
                }
                defer { group.cancelAll() }
                guard let answer = try await group.next() ?? nil else {
                    throw ManagementError(description: "\(location): no answer within 15 s")
                }
                return answer
            }
        } catch where refuser.challenged.withLock({ $0 }) {
            throw ManagementError(description: "\(location): HTTP 401 (the user or password of --management-url was refused)")
        }
    }

    /// GET /api/queues/{vhost}/{name}.
    static func managementCounts(base: String, vhost: String, queue: String) async throws
        -> (ready: Int, unacked: Int, consumers: Int)
    {
        guard var components = URLComponents(string: base) else { throw ManagementError(description: "bad URL") }
        let user = components.user.flatMap { $0.removingPercentEncoding } ?? "guest"
        let password = components.password.flatMap { $0.removingPercentEncoding } ?? "guest"
        components.user = nil
        components.password = nil
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-._~")
        let encode = { (text: String) in text.addingPercentEncoding(withAllowedCharacters: allowed) ?? text }
        // A base that already ends in /api (the form the UI's docs show) is
        // the same API, not a prefix of it.
        var basePath = components.percentEncodedPath
        while basePath.hasSuffix("/") { basePath.removeLast() }
        if basePath.hasSuffix("/api") { basePath.removeLast(4) }
        components.percentEncodedPath = basePath + "/api/queues/" + encode(vhost) + "/" + encode(queue)
        guard let url = components.url else { throw ManagementError(description: "bad URL") }
        let location = "GET \(url.absoluteString)"
        var request = URLRequest(url: url, timeoutInterval: 10)
        request.setValue("Basic " + Data("\(user):\(password)".utf8).base64EncodedString(), forHTTPHeaderField: "Authorization")
        let (data, response) = try await Self.fetch(request, location: location)
        let status = (response as? HTTPURLResponse)?.statusCode ?? 0
        guard status == 200 else {
            let hint = status == 401 ? " (the user or password of --management-url was refused)" : ""
            throw ManagementError(description: "\(location): HTTP \(status)\(hint)")
        }
        guard let object = try JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw ManagementError(description: "not a JSON object")
        }
        func int(_ key: String) -> Int { (object[key] as? NSNumber)?.intValue ?? 0 }
        return (int("messages_ready"), int("messages_unacknowledged"), int("consumers"))
    }
}
