/// A Celery signature as it travels in a protocol 2 message's `embed`
/// (`callbacks`, `errbacks`, `chain`) and in a signature's own `link` /
/// `link_error` options: `{"task", "args", "kwargs", "options",
/// "subtask_type", "immutable"}` (Celery 5.5, `celery.canvas.Signature`,
/// serialized as a dict by kombu's JSON serializer).
///
/// Only what a worker can publish as a plain task message is accepted: a
/// task signature (`subtask_type` null), or a group of them
/// (`subtask_type` `"group"`, the members in `kwargs.tasks`, Celery's
/// `celery.group`). Chains nested in a callback, chords and other canvas
/// types are refused when the message is read (``CeleryCanvas``).
struct CelerySignature: Sendable, Hashable {
    /// The task name (`task`).
    var task: String
    var args: [JSONValue]
    var kwargs: [String: JSONValue]
    /// `options` as sent: `task_id`, `reply_to`, `link`, `link_error`,
    /// `queue`, `priority`, `countdown`, `eta`, `expires`, `time_limit`,
    /// `soft_time_limit`, `group_id`, `group_index`, `ignore_result`...
    var options: [String: JSONValue]
    /// True: the parent's result is not prepended to `args`.
    var immutable: Bool
    /// For a group signature (`subtask_type` `"group"`), its members.
    var members: [CelerySignature]?

    /// The signature's `task_id` option, when it was frozen by the client
    /// (chain elements always are).
    var taskID: String? { options["task_id"]?.stringValue.flatMap { $0.isEmpty ? nil : $0 } }
    /// The `reply_to` option: where its result goes (`rpc://`).
    var replyTo: String? { options["reply_to"]?.stringValue.flatMap { $0.isEmpty ? nil : $0 } }

    /// The `link` / `link_error` option: one signature or a list of them.
    func linked(_ key: String) -> [JSONValue] {
        switch options[key] {
        case .array(let values)?: return values
        case .object(let value)?: return [.object(value)]
        default: return []
        }
    }

    /// Reads a signature; `role` names where it was found, for the error
    /// (`"embed.callbacks[0]"`).
    ///
    /// - Throws: ``TaskInputError`` `.invalidField` naming the field that
    ///   does not fit, or the canvas type that is not supported.
    init(_ value: JSONValue, role: String) throws(TaskInputError) {
        guard case .object(let fields) = value else {
            throw TaskInputError(.invalidField, "Celery \(role) must be a signature object, found \(value.kindName)")
        }
        guard case .string(let task)? = fields["task"], !task.isEmpty else {
            throw TaskInputError(.invalidField, "Celery \(role) has no task name")
        }
        switch fields["args"] ?? .null {
        case .array(let values): args = values
        case .null: args = []
        case let other: throw TaskInputError(.invalidField, "Celery \(role).args must be an array, found \(other.kindName)")
        }
        switch fields["kwargs"] ?? .null {
        case .object(let values): kwargs = values
        case .null: kwargs = [:]
        case let other: throw TaskInputError(.invalidField, "Celery \(role).kwargs must be an object, found \(other.kindName)")
        }
        switch fields["options"] ?? .null {
        case .object(let values): options = values
        case .null: options = [:]
        case let other: throw TaskInputError(.invalidField, "Celery \(role).options must be an object, found \(other.kindName)")
        }
        immutable = fields["immutable"]?.boolValue ?? false
        self.task = task
        switch fields["subtask_type"] ?? .null {
        case .null:
            members = nil
        case .string("group"):
            guard case .array(let tasks)? = kwargs["tasks"] else {
                throw TaskInputError(.invalidField, "Celery \(role) is a group without kwargs.tasks")
            }
            var read: [CelerySignature] = []
            for (index, member) in tasks.enumerated() {
                let signature = try CelerySignature(member, role: "\(role).tasks[\(index)]")
                guard signature.members == nil else {
                    throw TaskInputError(.invalidField, "Celery \(role) nests a group in a group, which this worker does not publish")
                }
                read.append(signature)
            }
            members = read
        case .string(let type):
            throw TaskInputError(
                .invalidField,
                "Celery \(role) is a '\(type)' signature; only task signatures and groups are published by this worker (chords and nested canvases need swift-qtasks' own workflows, docs/workflows.md)")
        case let other:
            throw TaskInputError(.invalidField, "Celery \(role).subtask_type must be a string, found \(other.kindName)")
        }
        try checkOptions(role: role)
        for (key, list) in [("link", linked("link")), ("link_error", linked("link_error"))] {
            for (index, nested) in list.enumerated() {
                _ = try CelerySignature(nested, role: "\(role).options.\(key)[\(index)]")
            }
        }
    }

    /// Options that would route the follow-up somewhere this worker cannot
    /// publish to are refused up front, not dropped later.
    private func checkOptions(role: String) throws(TaskInputError) {
        if let exchange = options["exchange"], exchange != .null, exchange != .string("") {
            throw TaskInputError(
                .invalidField,
                "Celery \(role) is routed to exchange \(exchange); this worker publishes follow-up tasks to queues (the options 'queue' or 'routing_key') only")
        }
        if let queue = options["queue"], queue != .null, queue.stringValue == nil {
            throw TaskInputError(.invalidField, "Celery \(role).options.queue must be a queue name, found \(queue.kindName)")
        }
        for key in ["queue", "routing_key"] {
            // A name the worker can never declare would requeue the parent
            // for ever; refused before the task runs.
            if let name = options[key]?.stringValue, !name.isEmpty {
                do {
                    try QueueNaming.validateTaskQueue(name, what: "Celery \(role).options.\(key)")
                } catch {
                    throw TaskInputError(.invalidField, "\(error)")
                }
            }
        }
        if let soft = options["soft_time_limit"], soft != .null {
            throw TaskInputError(
                .invalidField,
                "Celery \(role) asks for a soft time limit, which this worker cannot honour (a Swift task cannot be interrupted with an exception); use time_limit")
        }
    }
}
