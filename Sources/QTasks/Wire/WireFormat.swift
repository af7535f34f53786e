/// The two task message formats a worker reads, told apart per message by
/// its headers (docs/wire-format.md, docs/interop.md).
public enum WireFormat: Sendable, Hashable, CustomStringConvertible {
    /// The QTasks body (`{"uuid", "task_name", "args", "kwargs", ...}`):
    /// this package's client, the CLI, Python QTasks, pika, `amqp-publish`.
    /// Results go back as ``TaskResult`` bodies.
    case qtasks
    /// Celery's message protocol 2: the task name and id in the headers
    /// `task` and `id`, the body `[args, kwargs, embed]`. Results go back
    /// as Celery's `rpc://` result backend expects them (``CeleryResult``).
    case celery

    /// The format of a message: ``celery`` when it has a string header
    /// `task` (Celery protocol 2 always sets it), else ``qtasks``.
    public init(detecting properties: MessageProperties) {
        if case .string(let name)? = properties.headers[CeleryProtocol.taskHeader], !name.isEmpty {
            self = .celery
        } else {
            self = .qtasks
        }
    }

    public var description: String {
        switch self {
        case .qtasks: return "qtasks"
        case .celery: return "celery"
        }
    }
}
