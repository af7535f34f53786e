import Foundation
import Logging
import QTasks
import QTasksRabbitMQ
import QTasksScheduler
import QTasksState

/// A refusal or failure of an API call: its HTTP status and
/// `{"error": message}`.
struct APIError: Error, Sendable {
    var status: Int
    var message: String

    static func badRequest(_ message: String) -> APIError { APIError(status: 400, message: message) }
    static func notFound(_ message: String) -> APIError { APIError(status: 404, message: message) }
    static func unavailable(_ message: String) -> APIError { APIError(status: 503, message: message) }
}

/// What the JSON endpoints of docs/dashboard.md ("JSON API") answer, apart from
/// HTTP: each method takes the query or body as plain values and returns
/// the JSON, so that it is testable without a server.
final class DashboardAPI: Sendable {
    let configuration: DashboardConfiguration
    let broker: BrokerAccess?
    let feed: LiveFeed
    let logger: Logger

    init(configuration: DashboardConfiguration, logger: Logger) {
        self.configuration = configuration
        self.broker = configuration.broker.map { BrokerAccess(configuration: $0, logger: logger) }
        self.feed = LiveFeed()
        self.logger = logger
    }

    // MARK: Overview and workers

    /// The queues to show: the configured ones and those live workers
    /// consume.
    private func knownQueues(_ workers: [WorkerHeartbeat]) -> [String] {
        configuration.queues + workers.flatMap(\.queues)
    }

    private func workers() async -> (workers: [WorkerHeartbeat], error: String?) {
        guard let store = configuration.resultStore else { return ([], "no result store configured") }
        do {
            return (try await store.liveWorkers(), nil)
        } catch {
            return ([], "result store: \(error)")
        }
    }

    func overview() async -> JSONValue {
        let now = Date()
        let (workers, workersError) = await workers()
        let snapshot = await QueueSnapshot.take(
            known: knownQueues(workers), broker: broker, management: configuration.managementAPI,
            virtualHost: configuration.broker?.connection.virtualHost ?? "/")
        let (lastHour, chart, _) = await feed.overview(now: now)
        let stale = workers.filter { JSONShapes.isStale($0, now: now) }.count
        return .object([
            "generated_at": .time(now),
            "queue_source": .string(snapshot.source),
            "queue_error": .optional(snapshot.error),
            "queues": .array(snapshot.rows.map(\.json)),
            "workers": .object(["online": .int(Int64(workers.count - stale)), "stale": .int(Int64(stale))]),
            "workers_error": .optional(workersError),
            "last_hour": lastHour,
            "chart": chart,
        ])
    }

    func workerList() async throws -> JSONValue {
        guard configuration.resultStore != nil else { throw APIError.unavailable("no result store configured") }
        let (workers, error) = await workers()
        if let error { throw APIError.unavailable(error) }
        let now = Date()
        return .object([
            "workers": .array(workers.sorted { $0.workerID < $1.workerID }.map { JSONShapes.worker($0, now: now) }),
            "stale_after": .double(workers.first.map { $0.expiresAt.timeIntervalSince($0.sentAt) * 2 / 3 } ?? 10),
        ])
    }

    // MARK: Tasks

    private func store() throws -> any ResultStore {
        guard let store = configuration.resultStore else { throw APIError.unavailable("no result store configured") }
        return store
    }

    /// `/api/tasks`. Parameters as in the query string.
    func tasks(_ parameters: [String: [String]]) async throws -> JSONValue {
        let store = try store()
        func one(_ key: String) -> String? { parameters[key]?.last.flatMap { $0.isEmpty ? nil : $0 } }
        func number(_ key: String) throws -> Double? {
            guard let text = one(key) else { return nil }
            guard let value = Double(text), value.isFinite else { throw APIError.badRequest("\(key) must be a number") }
            return value
        }
        func integer(_ key: String) throws -> Int? {
            guard let text = one(key) else { return nil }
            guard let value = Int(text) else { throw APIError.badRequest("\(key) must be a whole number") }
            return value
        }
        let limit = try integer("limit") ?? 50
        let offset = try integer("offset") ?? 0
        guard (1...500).contains(limit) else { throw APIError.badRequest("limit must be 1 to 500") }
        guard offset >= 0 else { throw APIError.badRequest("offset must be 0 or more") }
        do {
            if let uuid = one("uuid") {
                let records = try await store.record(for: uuid).map { [$0] } ?? []
                return .object([
                    "tasks": .array(records.map(JSONShapes.taskSummary)), "limit": .int(Int64(limit)),
                    "offset": 0, "has_more": false,
                ])
            }
            var statuses: Set<TaskStatus>?
            let given = (parameters["status"] ?? []).flatMap { $0.split(separator: ",").map(String.init) }.filter { !$0.isEmpty }
            if !given.isEmpty {
                let known: [TaskStatus] = [.new, .process, .retry, .success, .error, .cancel]
                statuses = []
                for text in given {
                    guard let status = known.first(where: { $0.rawValue == text }) else {
                        throw APIError.badRequest("unknown status \(text): one of \(known.map(\.rawValue).joined(separator: ", "))")
                    }
                    statuses?.insert(status)
                }
            }
            let query = TaskRecordQuery(
                statuses: statuses, taskName: one("name"), queue: one("queue"),
                since: try number("since").map(Date.init(timeIntervalSince1970:)),
                until: try number("until").map(Date.init(timeIntervalSince1970:)), limit: limit + 1, offset: offset)
            let records = try await store.records(matching: query)
            return .object([
                "tasks": .array(records.prefix(limit).map(JSONShapes.taskSummary)), "limit": .int(Int64(limit)),
                "offset": .int(Int64(offset)), "has_more": .bool(records.count > limit),
            ])
        } catch let error as ResultStoreError {
            throw APIError.unavailable("result store: \(error)")
        }
    }

    /// `/api/tasks/<uuid>`: the stored record plus `attempts`.
    func task(_ uuid: String) async throws -> JSONValue {
        let store = try store()
        let record: TaskRecord?
        do {
            record = try await store.record(for: uuid)
        } catch {
            throw APIError.unavailable("result store: \(error)")
        }
        guard let record else { throw APIError.notFound("no record of task \(uuid)") }
        guard case .object(var object) = try JSONParser.parse(Array(TaskRecordJSON.encode(record).utf8)) else {
            throw APIError.unavailable("the record of \(uuid) does not encode as an object")
        }
        object["attempts"] = JSONShapes.attempts(of: record)
        return .object(object)
    }

    // MARK: Dead letters

    private func requireBroker() throws -> BrokerAccess {
        guard let broker else { throw APIError.unavailable("no broker configured") }
        return broker
    }

    private func brokerCall<T: Sendable>(_ body: @Sendable (DeadLetterQueueAdmin) async throws -> T) async throws -> T {
        do {
            return try await requireBroker().withAdmin(body)
        } catch let error as APIError {
            throw error
        } catch let error as BrokerError where error.replyCode == 404 {
            throw APIError.notFound("no such queue: \(error)")
        } catch {
            throw APIError.unavailable("broker: \(error)")
        }
    }

    /// `/api/dead-letters`: every known task queue whose `.dlq` exists.
    func deadLetterQueues() async throws -> JSONValue {
        let (workers, _) = await workers()
        var names = Set(knownQueues(workers).filter(QueueSnapshot.isTaskQueue))
        if let management = configuration.managementAPI,
            let all = try? await management.queues(virtualHost: configuration.broker?.connection.virtualHost ?? "/")
        {
            for queue in all where queue.name.hasSuffix(".dlq") { names.insert(String(queue.name.dropLast(4))) }
        }
        let sorted = names.sorted()
        let rows = try await brokerCall { admin in
            var rows: [JSONValue] = []
            for name in sorted {
                let deadLetterQueue = QueueNaming.deadLetterQueue(for: name)
                guard let status = try await admin.status(deadLetterQueue) else { continue }
                rows.append(
                    .object([
                        "queue": .string(name), "dead_letter_queue": .string(deadLetterQueue),
                        "count": .int(Int64(status.ready)),
                    ]))
            }
            return rows
        }
        return .object(["queues": .array(rows)])
    }

    /// The task queue and dead-letter queue of a path parameter that may
    /// name either.
    private static func names(_ queue: String) throws -> (queue: String, deadLetterQueue: String) {
        let deadLetterQueue = DeadLetterQueueAdmin.deadLetterQueue(for: queue)
        guard !queue.isEmpty, deadLetterQueue.utf8.count <= 255 else {
            throw APIError.badRequest("a queue name is 1 to 251 bytes (its dead-letter queue adds .dlq, and AMQP allows 255)")
        }
        try Self.refuseControlCharacters(queue, "a queue name")
        return (queue.hasSuffix(".dlq") ? String(queue.dropLast(4)) : queue, deadLetterQueue)
    }

    /// Names with control characters are refused: no queue of a worker
    /// has them, and they would reach the logs as they are.
    static func refuseControlCharacters(_ text: String, _ what: String) throws {
        if text.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) {
            throw APIError.badRequest("\(what) must not contain control characters")
        }
    }

    /// `/api/dead-letters/<queue>`: the first `limit` messages, left in the
    /// queue.
    func deadLetters(_ queue: String, limit: Int) async throws -> JSONValue {
        let (queue, deadLetterQueue) = try Self.names(queue)
        guard (1...500).contains(limit) else { throw APIError.badRequest("limit must be 1 to 500") }
        let maxBody = configuration.maxBodyPreviewBytes
        let (count, letters) = try await brokerCall { admin in
            guard let count = try await admin.status(deadLetterQueue)?.ready else {
                throw APIError.notFound("no dead-letter queue \(deadLetterQueue)")
            }
            return (count, try await admin.browse(deadLetterQueue, limit: limit, maxBodySize: maxBody))
        }
        return .object([
            "queue": .string(queue), "dead_letter_queue": .string(deadLetterQueue), "count": .int(Int64(count)),
            "messages": .array(letters.map(Self.letterJSON)),
        ])
    }

    static func letterJSON(_ letter: DeadLetter) -> JSONValue {
        let headers = letter.message.properties.headers
        var shown: [String: JSONValue] = [:]
        for (key, value) in headers where key.hasPrefix("x-qtasks-") || key == "x-delivery-count" {
            shown[key] = headerJSON(value)
        }
        var reason: String?
        if let death = letter.latestDeathReason { reason = death }
        let errorType: String? = if case .string(let type)? = headers[MessageHeaders.errorType] { type } else { nil }
        let errorMessage: String? = if case .string(let text)? = headers[MessageHeaders.errorMessage] { text } else { nil }
        return .object([
            "position": .int(Int64(letter.position)), "uuid": .optional(letter.uuid),
            "task_name": .optional(letter.taskName), "origin_queue": .optional(letter.originQueue),
            "error_type": .optional(errorType), "error_message": .optional(errorMessage),
            "failed_at": .optional(letter.failedAt), "attempts": .optional(letter.attempts), "reason": .optional(reason),
            "headers": .object(shown), "body": .string(String(decoding: letter.message.body, as: UTF8.self)),
        ])
    }

    private static func headerJSON(_ value: HeaderValue) -> JSONValue {
        switch value {
        case .string(let text): return .string(text)
        case .int(let number): return .int(number)
        case .double(let number): return .double(number)
        case .bool(let flag): return .bool(flag)
        case .array(let values): return .array(values.map(headerJSON))
        case .table(let table): return .object(table.mapValues(headerJSON))
        default: return .string(String(describing: value))
        }
    }

    /// `POST /api/dead-letters/<queue>/replay`: one message (`uuid`) or all.
    func replay(_ queue: String, uuid: String?) async throws -> JSONValue {
        let (_, deadLetterQueue) = try Self.names(queue)
        if let uuid {
            let origin = try await brokerCall { admin in try await admin.replay(deadLetterQueue, uuid: uuid) }
            guard let origin else { throw APIError.notFound("no message of task \(uuid) in \(deadLetterQueue)") }
            logger.notice("replayed a dead letter", metadata: ["queue": "\(deadLetterQueue)", "uuid": "\(uuid)"])
            return .object(["moved": .object([origin: 1])])
        }
        let moved = try await brokerCall { admin in try await admin.replay(deadLetterQueue, limit: Int.max) }
        logger.notice("replayed dead letters", metadata: ["queue": "\(deadLetterQueue)", "moved": "\(moved)"])
        return .object(["moved": .object(moved.mapValues { .int(Int64($0)) })])
    }

    /// `POST /api/dead-letters/<queue>/purge`: needs `confirm` to name the
    /// dead-letter queue.
    func purge(_ queue: String, confirm: String?) async throws -> JSONValue {
        let (_, deadLetterQueue) = try Self.names(queue)
        guard confirm == deadLetterQueue else {
            throw APIError.badRequest("to purge, send {\"confirm\": \"\(deadLetterQueue)\"}")
        }
        let purged = try await brokerCall { admin in try await admin.purge(deadLetterQueue) }
        logger.notice("purged a dead-letter queue", metadata: ["queue": "\(deadLetterQueue)", "purged": "\(purged)"])
        return .object(["purged": .int(Int64(purged))])
    }
}

extension DeadLetter {
    /// RabbitMQ's reason when the broker dead-lettered it.
    var latestDeathReason: String? {
        guard case .array(let deaths)? = message.properties.headers["x-death"], case .table(let first)? = deaths.first,
            case .string(let reason)? = first["reason"]
        else { return nil }
        return reason
    }
}
