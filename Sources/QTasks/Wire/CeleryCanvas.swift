/// The canvas part of a Celery protocol 2 message: its `embed`
/// (`{"callbacks", "errbacks", "chain", "chord"}`) and the `root_id` /
/// `parent_id` headers, which is what a worker needs to publish the tasks
/// that follow this one (Celery 5.5, `celery.app.trace.build_tracer` and
/// `celery.backends.base.Backend._call_task_errbacks`).
///
/// - `callbacks` (`link`): after a success, each is published with the
///   result prepended to its args (unless immutable).
/// - `errbacks` (`link_error`): after a failure, each is published with
///   the failed task's id prepended (Celery's "old-style" errback, what a
///   Celery worker does with an errback that is not a task of its own app).
/// - `chain`: the rest of a chain, last element first; after a success the
///   last element is published with the result prepended and the rest as
///   its own `chain`. After a failure, each element with a `task_id` gets
///   the same `FAILURE` on its `reply_to`, as Celery's
///   `Backend.mark_as_failure` does, so a client waiting on the chain's
///   last result sees the error instead of waiting for ever.
/// - `chord`: refused (error result, dead letter): a chord's join needs
///   swift-qtasks' own workflows (docs/workflows.md).
struct CeleryCanvas: Sendable, Hashable {
    var callbacks: [CelerySignature] = []
    var errbacks: [CelerySignature] = []
    /// The chain's remaining elements as sent, last to run first (Celery
    /// pops from the end).
    var chain: [CelerySignature] = []
    /// The raw chain, carried on unchanged in the next message.
    var rawChain: [JSONValue] = []
    /// Header `root_id`: the first task of the workflow.
    var rootID: String?
    /// Header `parent_id`: the task that published this one.
    var parentID: String?

    var isEmpty: Bool { callbacks.isEmpty && errbacks.isEmpty && chain.isEmpty }

    /// Reads `embed` (the third element of the body; absent or null: no
    /// canvas).
    ///
    /// - Throws: ``TaskInputError`` `.invalidField` for a non-null `chord`,
    ///   and for a signature this worker cannot publish, naming it.
    init(embed: JSONValue?, headers: [String: HeaderValue]) throws(TaskInputError) {
        rootID = Self.string(headers["root_id"])
        parentID = Self.string(headers["parent_id"])
        guard let embed, embed != .null else { return }
        guard case .object(let fields) = embed else {
            throw TaskInputError(.invalidField, "Celery embed must be an object, found \(embed.kindName)")
        }
        if let chord = fields["chord"], chord != .null {
            let name = chord.objectValue?["task"]?.stringValue.map { " (callback '\($0)')" } ?? ""
            throw TaskInputError(
                .invalidField,
                "Celery chords are not supported\(name): a chord's join needs swift-qtasks' own workflows (docs/workflows.md)")
        }
        callbacks = try Self.list(fields["callbacks"], role: "embed.callbacks")
        errbacks = try Self.list(fields["errbacks"], role: "embed.errbacks")
        chain = try Self.list(fields["chain"], role: "embed.chain")
        rawChain = fields["chain"]?.arrayValue ?? []
        // A group inside a chain must be its last step: Celery turns
        // group-then-task into a chord, which is refused above.
        if chain.count > 1, chain.dropFirst().contains(where: { $0.members != nil }) {
            throw TaskInputError(
                .invalidField,
                "Celery chain has a group followed by more tasks (a chord): that needs swift-qtasks' own workflows (docs/workflows.md)")
        }
    }

    private static func list(_ value: JSONValue?, role: String) throws(TaskInputError) -> [CelerySignature] {
        switch value ?? .null {
        case .null: return []
        case .array(let values):
            var signatures: [CelerySignature] = []
            for (index, value) in values.enumerated() {
                signatures.append(try CelerySignature(value, role: "\(role)[\(index)]"))
            }
            return signatures
        case .object:
            return [try CelerySignature(value!, role: role)]
        case let other:
            throw TaskInputError(.invalidField, "Celery \(role) must be a list of signatures, found \(other.kindName)")
        }
    }

    private static func string(_ value: HeaderValue?) -> String? {
        if case .string(let text)? = value, !text.isEmpty { return text }
        return nil
    }
}
