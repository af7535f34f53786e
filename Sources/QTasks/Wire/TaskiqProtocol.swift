/// Taskiq's message (taskiq 0.13, `taskiq.message.TaskiqMessage`, JSON
/// serializer) as `taskiq-aio-pika` publishes it: the body
/// `{"task_id", "task_name", "labels", "labels_types", "args", "kwargs"}`,
/// with `task_id`, `task_name` and the labels also as AMQP headers, to the
/// exchange `taskiq` (topic) with the queue's name as routing key
/// (docs/interop.md, "Taskiq").
///
/// The task registered under `task_name` runs with `task_id` as its uuid.
/// Labels:
/// - `delay` (seconds): honoured. taskiq-aio-pika itself delays through a
///   delay queue (with `delay_queue=` configured) that dead-letters into
///   the task queue once the time is up: a message that arrives that way
///   (RabbitMQ's `x-death` header, reason `expired`) has waited already and
///   runs at once. A message with `delay` that did not come through such a
///   queue waits that long from when the worker first reads it, held by
///   the broker;
/// - `timeout` (seconds): the time limit of this run (taskiq's receiver
///   honours it the same way);
/// - `_retries` (taskiq's retry middlewares): the attempts made before;
/// - `priority` (the AMQP priority), `schedule_id` and any other label:
///   ignored, labels are the producer's metadata.
enum TaskiqProtocol {
    /// - Throws: ``TaskInputError`` naming a missing or malformed field.
    static func read(body: [UInt8], properties: MessageProperties, now: Double) throws(TaskInputError) -> InboundTask {
        let fields = try ForeignBody.object(body, format: "Taskiq")
        guard case .string(let uuid)? = fields["task_id"], !uuid.isEmpty else {
            throw TaskInputError(.invalidField, "Taskiq message has no task_id string")
        }
        guard case .string(let taskName)? = fields["task_name"], !taskName.isEmpty else {
            throw TaskInputError(.invalidField, "Taskiq message has no task_name string", uuid: uuid)
        }
        func failure(_ message: String) -> TaskInputError {
            TaskInputError(.invalidField, message, uuid: uuid, taskName: taskName)
        }
        guard case .object(let labels)? = fields["labels"] else {
            throw failure("Taskiq labels must be a JSON object, found \(fields["labels"]?.kindName ?? "nothing")")
        }
        var args: [JSONValue] = []
        switch fields["args"] ?? .null {
        case .array(let values): args = values
        case .null: break
        case let other: throw failure("Taskiq args must be a JSON array, found \(other.kindName)")
        }
        var kwargs: [String: JSONValue] = [:]
        switch fields["kwargs"] ?? .null {
        case .object(let values): kwargs = values
        case .null: break
        case let other: throw failure("Taskiq kwargs must be a JSON object, found \(other.kindName)")
        }
        var task = InboundTask(
            format: .taskiq,
            body: ForeignBody.qtasksBody(uuid: uuid, taskName: taskName, args: args, kwargs: kwargs, createdAt: nil))
        func seconds(_ key: String) throws(TaskInputError) -> Double? {
            guard let value = labels[key], value != .null else { return nil }
            guard let number = ForeignBody.number(value), number >= 0 else {
                throw failure("Taskiq labels.\(key) must be a non-negative number of seconds, found \(value)")
            }
            return number
        }
        if let delay = try seconds("delay"), delay > 0, !cameThroughDelayQueue(properties) {
            task.notBefore = now + delay
        }
        if let timeout = try seconds("timeout"), timeout > 0 {
            task.timeLimit = Seconds.duration(timeout)
        }
        if let retries = try seconds("_retries") {
            task.retries = Int(retries)
        }
        return task
    }

    /// True when RabbitMQ dead-lettered the message into this queue when
    /// its time-to-live ran out: taskiq-aio-pika's delay queue (or any
    /// TTL queue) has held it for its delay already.
    static func cameThroughDelayQueue(_ properties: MessageProperties) -> Bool {
        if case .string(let reason)? = properties.headers["x-first-death-reason"], reason == "expired" { return true }
        guard case .array(let deaths)? = properties.headers["x-death"] else { return false }
        return deaths.contains { death in
            if case .table(let fields) = death, case .string("expired")? = fields["reason"] { return true }
            return false
        }
    }
}
