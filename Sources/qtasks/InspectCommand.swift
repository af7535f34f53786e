import ArgumentParser
import Foundation
import Logging
import QTasksRabbitMQ
import RabbitMQManagement

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
            do {
                _ = try RabbitMQManagementAPI(url: managementURL)
            } catch {
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
                let api = try RabbitMQManagementAPI(url: managementURL)
                for index in rows.indices where rows[index].exists {
                    guard let counts = try await api.queue(rows[index].queue, virtualHost: virtualHost) else { continue }
                    rows[index].ready = counts.ready
                    rows[index].unacked = counts.unacknowledged
                    rows[index].consumers = counts.consumers
                }
            } catch {
                printError("qtasks: management API: \(error)")
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
}
