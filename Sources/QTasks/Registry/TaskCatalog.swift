/// A frozen copy of a ``TaskApp``'s tasks: what a worker looks tasks up
/// in, without a lock on the hot path.
final class TaskCatalog: Sendable {
    let tasks: [String: RegisteredTask]

    init(tasks: [String: RegisteredTask]) {
        self.tasks = tasks
    }
}
