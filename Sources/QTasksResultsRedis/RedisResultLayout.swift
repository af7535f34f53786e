import Foundation
import QTasks

/// The Redis keys and hash fields of a result store under one prefix: Python
/// QTasks 1.7.3's layout (`qtasks/storages/async_redis.py`), plus indexes
/// and heartbeats of ours under names QTasks' `get_all` skips.
///
/// | key | type | what |
/// | --- | --- | --- |
/// | `<prefix>:<uuid>` | hash | a task's record (QTasks' fields and ours) |
/// | `<prefix>:task_process` | sorted set | QTasks' in-flight set: `name:uuid:priority`, score priority, while `process` |
/// | `<prefix>:qtasks_index:updated` | sorted set | every record, score its `updated_at` in ms |
/// | `<prefix>:qtasks_index:finished` | sorted set | finished records, score its `updated_at` in ms (the bound) |
/// | `<prefix>:qtasks_index:workers` | sorted set | worker ids, score the heartbeat's expiry in ms |
/// | `<prefix>:qtasks_worker:<id>` | string | a worker's latest heartbeat, JSON, with `PEXPIRE` |
///
/// QTasks' `get_all` scans `<prefix>:*`, splits each key on `:` and reads
/// `<prefix>:<second part>` as a task hash: for our keys that is
/// `<prefix>:qtasks_index` or `<prefix>:qtasks_worker`, which never exist,
/// so it lists nothing for them.
struct RedisResultLayout: Sendable {
    let prefix: String

    init(prefix: String) {
        self.prefix = prefix
        processKey = prefix + ":task_process"
        updatedKey = prefix + ":qtasks_index:updated"
        finishedKey = prefix + ":qtasks_index:finished"
        workersKey = prefix + ":qtasks_index:workers"
    }

    let processKey: String
    let updatedKey: String
    let finishedKey: String
    let workersKey: String

    func recordKey(_ uuid: String) -> String { prefix + ":" + uuid }
    func workerKey(_ workerID: String) -> String { prefix + ":qtasks_worker:" + workerID }

    /// The second parts of keys that are not task hashes: QTasks' own
    /// (`task_process`, `task_queue`) and ours.
    static let reservedNames: Set<String> = [
        "task_process", "task_queue", "qtasks_index", "qtasks_worker", "qtasks_workflow", "qtasks_join",
        "qtasks_join_members", "qtasks_join_outcomes", "qtasks_join_states", "qtasks_join_answers", "qtasks_step",
    ]

    // Workflows (RedisResultStore+Workflow.swift).
    func workflowKey(_ id: String) -> String { prefix + ":qtasks_workflow:" + id }
    /// Workflow ids, score the record's `updated_at` in ms.
    var workflowsKey: String { prefix + ":qtasks_index:workflows" }
    /// A join's counters (hash fields), `head` (JSON) and `initial`.
    func joinKey(_ id: String) -> String { prefix + ":qtasks_join:" + id }
    func joinMembersKey(_ id: String) -> String { prefix + ":qtasks_join_members:" + id }
    func joinOutcomesKey(_ id: String) -> String { prefix + ":qtasks_join_outcomes:" + id }
    func joinStatesKey(_ id: String) -> String { prefix + ":qtasks_join_states:" + id }
    func joinAnswersKey(_ id: String) -> String { prefix + ":qtasks_join_answers:" + id }
    func stepKey(_ uuid: String) -> String { prefix + ":qtasks_step:" + uuid }

    /// Whether a uuid can name a record in this layout: not empty, no `:`
    /// (QTasks splits keys and in-flight members on it) and not one of the
    /// ``reservedNames``.
    static func isStorable(uuid: String) -> Bool {
        !uuid.isEmpty && !uuid.utf8.contains(UInt8(ascii: ":")) && !reservedNames.contains(uuid)
    }

    /// The in-flight member of a record, `name:uuid:priority`; nil for a task
    /// name with a `:` (QTasks' `_running_older_tasks` splits the member in
    /// three and would fail on it).
    static func processMember(_ record: TaskRecord) -> String? {
        guard !record.taskName.utf8.contains(UInt8(ascii: ":")) else { return nil }
        return "\(record.taskName):\(record.uuid):\(record.priority)"
    }

    // MARK: - Hash fields

    enum Field {
        // QTasks' (schemas/task_status.py, storages/base.py `_build_task`).
        static let taskName = "task_name"
        static let priority = "priority"
        static let status = "status"
        static let args = "args"
        static let kwargs = "kwargs"
        static let createdAt = "created_at"
        static let updatedAt = "updated_at"
        static let returning = "returning"
        static let traceback = "traceback"
        static let cancelReason = "cancel_reason"
        static let retry = "retry"
        // Ours: QTasks reads them as extra fields of its `Task`.
        static let queue = "queue"
        static let attempt = "attempt"
        static let workerID = "worker_id"
        static let traceID = "trace_id"
        static let deadLetterQueue = "dead_letter_queue"
        static let errorType = "error_type"
        static let errorMessage = "error_message"
        /// The whole ``TaskRecord`` in its JSON form: what this store reads.
        static let record = "qtasks_record"

        /// Fields written for some records only: removed when a later write
        /// of the same record leaves them out.
        static let optional: [String] = [
            returning, traceback, cancelReason, workerID, traceID, deadLetterQueue, errorType, errorMessage,
        ]
    }

    /// What a write reads first, and a read reads, of each record
    /// (`HMGET`, in this order): our JSON record, else the fields a QTasks
    /// producer wrote (`TaskStatusNewSchema`).
    static let readFields: [String] = [
        Field.record, Field.taskName, Field.priority, Field.status, Field.args, Field.kwargs, Field.createdAt,
        Field.updatedAt, Field.retry,
    ]

    /// The hash fields of a record, in order (`HSET` arguments).
    ///
    /// QTasks' `_build_task` `json.loads` `args`, `kwargs` and `returning`,
    /// `float`s `created_at` and `updated_at` and `int`s `priority` and
    /// `retry`: `args` and `kwargs` are `[]` and `{}` when the arguments are
    /// unknown, omitted (secret) or truncated.
    static func fields(of record: TaskRecord, recordJSON: String) -> [(String, String)] {
        var fields: [(String, String)] = [
            (Field.taskName, record.taskName),
            (Field.priority, String(record.priority)),
            (Field.status, record.status.rawValue),
        ]
        let arguments = record.arguments.flatMap { $0.omitted || $0.truncated ? nil : $0 }
        fields.append((Field.args, JSONValue.array(arguments?.args ?? []).description))
        fields.append((Field.kwargs, JSONValue.object(arguments?.kwargs ?? [:]).description))
        fields.append((Field.createdAt, epochSeconds(record.createdAt)))
        fields.append((Field.updatedAt, epochSeconds(record.updatedAt)))
        fields.append((Field.retry, String(max(0, record.attempt - 1))))
        switch record.status {
        case .success:
            fields.append((Field.returning, (record.result ?? .null).description))
        case .error:
            fields.append((Field.traceback, record.failure?.traceback ?? ""))
        case .cancel:
            fields.append((Field.cancelReason, ""))
        default:
            break
        }
        fields.append((Field.queue, record.queue))
        fields.append((Field.attempt, String(record.attempt)))
        if let workerID = record.workerID { fields.append((Field.workerID, workerID)) }
        if let traceID = record.traceID { fields.append((Field.traceID, traceID)) }
        if let deadLetterQueue = record.deadLetterQueue { fields.append((Field.deadLetterQueue, deadLetterQueue)) }
        if let failure = record.failure {
            fields.append((Field.errorType, failure.type))
            fields.append((Field.errorMessage, failure.message))
        }
        fields.append((Field.record, recordJSON))
        return fields
    }

    /// Epoch seconds as text, as QTasks writes `time.time()`.
    static func epochSeconds(_ date: Date) -> String {
        String(date.timeIntervalSince1970)
    }

    /// A sorted-set score for a time: Unix milliseconds, with their fraction.
    static func score(_ date: Date) -> String {
        String(date.timeIntervalSince1970 * 1000)
    }

    // MARK: - Reading

    /// A record from the values of ``readFields``: our JSON record when
    /// present, else the hash a QTasks producer wrote (status `new`, its
    /// `args` and `kwargs` when they are JSON), else nil (no hash).
    ///
    /// - Throws: when `qtasks_record` does not parse (``TaskRecordJSON``).
    static func record(uuid: String, values: [String?]) throws -> TaskRecord? {
        if let json = values[0] {
            return try TaskRecordJSON.decode(json.utf8)
        }
        return foreignRecord(uuid: uuid, values: values)
    }

    /// The record of a hash that Python QTasks wrote (no `qtasks_record`):
    /// nil when it has no `task_name` and `status` (no hash).
    static func foreignRecord(uuid: String, values: [String?]) -> TaskRecord? {
        guard let taskName = values[1], let statusText = values[3] else { return nil }
        let created = values[6].flatMap(Double.init).map(Date.init(timeIntervalSince1970:))
        let updated = values[7].flatMap(Double.init).map(Date.init(timeIntervalSince1970:))
        var arguments: RecordedArguments?
        // QTasks' RabbitMQ producer (1.7.3) writes Python's `str(args)`, such
        // as `(2, 3)`, which is not JSON: those stay unknown until a worker
        // records the arguments it received.
        if let argsText = values[4], let kwargsText = values[5],
            case .array(let args)? = try? JSONParser.parse(argsText.utf8),
            case .object(let kwargs)? = try? JSONParser.parse(kwargsText.utf8)
        {
            arguments = RecordedArguments(args: args, kwargs: kwargs)
        }
        let retry = values[8].flatMap { Int($0) } ?? 0
        return TaskRecord(
            uuid: uuid, taskName: taskName, queue: "", status: TaskStatus(rawValue: statusText),
            priority: values[2].flatMap { Int($0) } ?? 0, arguments: arguments, attempt: max(1, retry + 1),
            createdAt: created ?? updated ?? Date(timeIntervalSince1970: 0),
            updatedAt: updated ?? created ?? Date(timeIntervalSince1970: 0))
    }
}
