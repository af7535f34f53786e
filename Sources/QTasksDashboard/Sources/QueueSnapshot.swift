import Foundation
import QTasks
import QTasksRabbitMQ
import RabbitMQManagement

/// One task queue on the overview: `queues[]` of `/api/overview`.
struct QueueRow: Sendable {
    var name: String
    var ready: Int?
    var unacknowledged: Int?
    var consumers: Int?
    var publishRate: Double?
    var deliverRate: Double?
    /// The ready count of `<name>.dlq`; nil when it does not exist.
    var deadLetters: Int?

    var json: JSONValue {
        .object([
            "name": .string(name), "ready": .optional(ready), "unacked": .optional(unacknowledged),
            "consumers": .optional(consumers), "publish_rate": .optional(publishRate),
            "deliver_rate": .optional(deliverRate), "dead_letters": .optional(deadLetters),
        ])
    }
}

/// The task queues and their counts, from the management API when given
/// (every queue of the virtual host, with unacked counts and rates), else
/// from passive declares of the queues the dashboard knows: its
/// configured ones and those live workers consume.
struct QueueSnapshot: Sendable {
    var rows: [QueueRow]
    var source: String
    var error: String?

    /// Whether a name is a task queue rather than one of the worker's
    /// companions (`.dlq`, `.retry.<ms>`), a server-named queue or the
    /// events tail.
    static func isTaskQueue(_ name: String) -> Bool {
        !name.hasSuffix(".dlq") && !name.contains(".retry.") && !name.hasPrefix("amq.")
    }

    static func take(
        known: [String], broker: BrokerAccess?, management: RabbitMQManagementAPI?, virtualHost: String
    ) async -> QueueSnapshot {
        let known = Array(Set(known.filter(isTaskQueue))).sorted()
        if let management {
            do {
                let all = try await management.queues(virtualHost: virtualHost)
                let byName = Dictionary(all.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
                var names = Set(known)
                for queue in all where isTaskQueue(queue.name) && !queue.isExclusive { names.insert(queue.name) }
                let rows = names.sorted().map { name -> QueueRow in
                    let stats = byName[name]
                    return QueueRow(
                        name: name, ready: stats?.ready, unacknowledged: stats?.unacknowledged,
                        consumers: stats?.consumers, publishRate: stats?.publishRate, deliverRate: stats?.deliverRate,
                        deadLetters: byName[QueueNaming.deadLetterQueue(for: name)]?.ready)
                }
                return QueueSnapshot(rows: rows, source: "management", error: nil)
            } catch {
                // Fall back to AMQP, saying why.
                var snapshot = await passive(known, broker: broker)
                snapshot.error = "management API: \(error)"
                return snapshot
            }
        }
        return await passive(known, broker: broker)
    }

    private static func passive(_ names: [String], broker: BrokerAccess?) async -> QueueSnapshot {
        guard let broker else {
            return QueueSnapshot(rows: names.map { QueueRow(name: $0) }, source: "amqp", error: "no broker configured")
        }
        do {
            let rows = try await broker.withAdmin { admin in
                var rows: [QueueRow] = []
                for name in names {
                    let status = try await admin.status(name)
                    let dead = try await admin.status(QueueNaming.deadLetterQueue(for: name))
                    rows.append(
                        QueueRow(name: name, ready: status?.ready, consumers: status?.consumers, deadLetters: dead?.ready))
                }
                return rows
            }
            return QueueSnapshot(rows: rows, source: "amqp", error: nil)
        } catch {
            return QueueSnapshot(rows: names.map { QueueRow(name: $0) }, source: "amqp", error: "broker: \(error)")
        }
    }
}

extension JSONValue {
    static func optional(_ value: Int?) -> JSONValue { value.map { .int(Int64($0)) } ?? .null }
    static func optional(_ value: Double?) -> JSONValue { value.map { .double($0) } ?? .null }
    static func optional(_ value: String?) -> JSONValue { value.map { .string($0) } ?? .null }
    static func time(_ date: Date?) -> JSONValue { date.map { .double($0.timeIntervalSince1970) } ?? .null }
    static func seconds(_ duration: Duration?) -> JSONValue {
        duration.map { .double(Double($0.components.seconds) + Double($0.components.attoseconds) / 1e18) } ?? .null
    }
}
