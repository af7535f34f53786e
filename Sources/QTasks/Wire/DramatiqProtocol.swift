/// Dramatiq's message as its `RabbitmqBroker` publishes it (Dramatiq 2.x,
/// `dramatiq.Message.encode()`, dramatiq.io "Advanced Topics"): a JSON
/// object
/// `{"queue_name", "actor_name", "args", "kwargs", "options",
/// "message_id", "message_timestamp"}`, no AMQP headers, no `reply_to`.
///
/// The task registered under `actor_name` runs with `message_id` as its
/// uuid. Options (docs/interop.md has the table):
/// - `eta` (Unix milliseconds; set on messages in the delay queue
///   `<queue>.DQ` by `send_with_options(delay=...)`): honoured, the task
///   waits in the broker's delay queues, never in the worker;
/// - `retries`: the attempts made before, so the attempt is `retries + 1`;
/// - `time_limit` (milliseconds): the time limit of this run;
/// - `max_age` (milliseconds after `message_timestamp`): an older message
///   is not run (a `cancel` result, as for Celery's `expires`);
/// - `pipe_target`, `on_success`, `on_failure`, `group_info` (pipelines,
///   callbacks, group completion): refused, error result and dead letter;
/// - the retry options (`max_retries`, `min_backoff`, `max_backoff`,
///   `retry_when`, `throws`): ignored, the worker's ``RetryPolicy`` decides;
/// - `broker_priority`, `redis_message_id`, `traceback` and other keys:
///   ignored (bookkeeping).
enum DramatiqProtocol {
    /// The suffix of Dramatiq's delay queue: `<queue>.DQ`.
    static let delayQueueSuffix = ".DQ"
    /// The suffix of Dramatiq's dead-letter queue: `<queue>.XQ`.
    static let deadLetterQueueSuffix = ".XQ"

    /// The queue a message of `queue` belongs to: `default` for
    /// `default.DQ`, the name itself otherwise.
    static func canonicalQueue(_ queue: String) -> String {
        queue.hasSuffix(delayQueueSuffix) ? String(queue.dropLast(delayQueueSuffix.count)) : queue
    }

    /// Options that change what the message means and are refused.
    static let refusedOptions: [(key: String, what: String)] = [
        ("pipe_target", "a pipeline step (pipe_target)"),
        ("on_success", "an on_success callback"),
        ("on_failure", "an on_failure callback"),
        ("group_info", "a group with completion callbacks (group_info)"),
    ]

    /// - Throws: ``TaskInputError`` naming a missing or malformed field, or
    ///   a refused option.
    static func read(body: [UInt8]) throws(TaskInputError) -> InboundTask {
        let fields = try ForeignBody.object(body, format: "Dramatiq")
        guard case .string(let actor)? = fields["actor_name"], !actor.isEmpty else {
            throw TaskInputError(.invalidField, "Dramatiq message has no actor_name string")
        }
        guard case .string(let uuid)? = fields["message_id"], !uuid.isEmpty else {
            throw TaskInputError(.invalidField, "Dramatiq message has no message_id string", taskName: actor)
        }
        func failure(_ message: String) -> TaskInputError {
            TaskInputError(.invalidField, message, uuid: uuid, taskName: actor)
        }
        var args: [JSONValue] = []
        switch fields["args"] ?? .null {
        case .array(let values): args = values
        case .null: break
        case let other: throw failure("Dramatiq args must be a JSON array, found \(other.kindName)")
        }
        var kwargs: [String: JSONValue] = [:]
        switch fields["kwargs"] ?? .null {
        case .object(let values): kwargs = values
        case .null: break
        case let other: throw failure("Dramatiq kwargs must be a JSON object, found \(other.kindName)")
        }
        var options: [String: JSONValue] = [:]
        switch fields["options"] ?? .null {
        case .object(let values): options = values
        case .null: break
        case let other: throw failure("Dramatiq options must be a JSON object, found \(other.kindName)")
        }
        var sentAt: Double?
        if let stamp = fields["message_timestamp"], stamp != .null {
            guard let millis = ForeignBody.number(stamp), stamp.stringValue == nil else {
                throw failure("Dramatiq message_timestamp must be Unix milliseconds, found \(stamp.kindName)")
            }
            sentAt = millis / 1000
        }
        for (key, what) in refusedOptions where options[key] != nil && options[key] != .null {
            throw failure("Dramatiq \(what) is not supported by this worker; send the task without it")
        }
        var task = InboundTask(
            format: .dramatiq,
            body: ForeignBody.qtasksBody(uuid: uuid, taskName: actor, args: args, kwargs: kwargs, createdAt: sentAt))
        func milliseconds(_ key: String) throws(TaskInputError) -> Double? {
            guard let value = options[key], value != .null else { return nil }
            guard value.stringValue == nil, let number = ForeignBody.number(value), number >= 0 else {
                throw failure("Dramatiq options.\(key) must be a non-negative number of milliseconds, found \(value)")
            }
            return number
        }
        if let eta = try milliseconds("eta") { task.notBefore = eta / 1000 }
        if let limit = try milliseconds("time_limit") {
            guard limit > 0 else { throw failure("Dramatiq options.time_limit must be positive, found 0") }
            task.timeLimit = Seconds.duration(limit / 1000)
        }
        if let age = try milliseconds("max_age") {
            guard let sentAt else { throw failure("Dramatiq options.max_age needs a message_timestamp") }
            task.expiresAt = sentAt + age / 1000
        }
        if let retries = options["retries"], retries != .null {
            guard case .int(let count) = retries, count >= 0 else {
                throw failure("Dramatiq options.retries must be a non-negative integer, found \(retries)")
            }
            task.retries = Int(clamping: count)
        }
        return task
    }
}
