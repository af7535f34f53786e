/// Resolves dependencies for a handler or a factory, keeping track of the
/// chain being resolved so that a cycle is an error, not a hang.
///
/// A factory gets one as its argument; a handler resolves through
/// ``TaskContext/resolve(_:)``.
public struct DependencyResolver: Sendable {
    /// The task's context, for task-scoped factories (its `uuid`, `logger`);
    /// nil for worker-scoped factories, which outlive any one task.
    public let context: TaskContext?
    let call: DependencyStore?
    let worker: DependencyStore
    /// The dependencies being resolved, outermost first; the last one is the
    /// dependency whose factory this resolver was given (empty for the
    /// handler's resolver).
    let chain: [DependencyKey]

    init(context: TaskContext?, call: DependencyStore?, worker: DependencyStore, chain: [DependencyKey]) {
        self.context = context
        self.call = call
        self.worker = worker
        self.chain = chain
    }

    /// The names of the dependencies being resolved, outermost first: the
    /// last is the one whose factory holds this resolver.
    public var path: [String] { chain.map(\.name) }

    /// Returns the scope's instance of `dependency`, setting it up first if
    /// this scope has none yet.
    ///
    /// - Returns: the same instance for every resolution in one task call
    ///   (task scope) or one worker (worker scope).
    /// - Throws: ``DependencyError`` `.factoryFailed` when its factory (or
    ///   one it depends on) threw, `.cycle` when it depends on itself,
    ///   `.scopeMismatch` when a worker-scoped factory asks for a
    ///   task-scoped dependency, `.unavailable` when the scope has ended;
    ///   `CancellationError` when the calling task is cancelled while it
    ///   waits.
    public func resolve<Value>(_ dependency: Dependency<Value>) async throws -> Value {
        let key = dependency.key
        if chain.contains(key) {
            throw DependencyError.cycle(chain + [key])
        }
        let store: DependencyStore
        if key.scope == .worker {
            store = worker
        } else if let call {
            store = call
        } else {
            let owner = chain.last?.name ?? "?"
            throw DependencyError(
                .scopeMismatch,
                "worker-scoped dependency '\(owner)' cannot use task-scoped dependency '\(key.name)', which would be torn down before it",
                dependency: key.name,
                path: path + [key.name]
            )
        }
        let value = try await store.resolve(key, requester: self, factory: dependency.erasedFactory)
        // The key was made by this Dependency<Value> and by no other, so the
        // stored value is a Value.
        return value as! Value
    }

    /// The resolver a factory of `key` gets.
    func child(for key: DependencyKey) -> DependencyResolver {
        key.scope == .task
            ? DependencyResolver(context: context, call: call, worker: worker, chain: chain + [key])
            : DependencyResolver(context: nil, call: nil, worker: worker, chain: chain + [key])
    }
}
