/// The fields of a task message body.
enum EnvelopeKey: String, CodingKey {
    case uuid
    case taskName = "task_name"
    case priority
    case args
    case kwargs
    case createdAt = "created_at"
    /// A workflow step's context (``WorkflowContext``).
    case workflow
}
