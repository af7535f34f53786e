/// A dependency declared once and resolved by tasks: a scope and a factory.
///
/// The factory may be sync or async, may throw, and may resolve other
/// dependencies through the ``DependencyResolver`` it is given. It returns
/// the value, or a ``Provided`` value with a teardown:
///
/// ```swift
/// let config = Dependency<Config>("config", scope: .worker) { _ in Config() }
///
/// let database = Dependency<Database>("database") { resolver in
///     let db = try await Database.connect(try await resolver.resolve(config).url)
///     return .value(db, teardown: { db, outcome in
///         if outcome.failed { await db.rollback() }
///         await db.close()
///     })
/// }
///
/// try app.register("save") { (context: TaskContext, name: String) in
///     let db = try await context.resolve(database)
///     try await db.insert(name)
/// }
/// ```
///
/// Declare a dependency once (a `let` at file or type level) and share that
/// value: identity, not the name, tells dependencies apart, so two
/// declarations with the same name are two dependencies.
///
/// Semantics:
/// - ``DependencyScope/task``: one instance per task call; resolving it
///   again in that call (from the handler or from other factories) returns
///   the same instance. Torn down when the call ends.
/// - ``DependencyScope/worker``: one instance per worker, created once even
///   when many tasks ask at the same moment (the factory runs in a task of
///   its own, so a caller's cancellation does not abort it). A factory that
///   throws is not cached: the next resolution tries again. A worker-scoped
///   factory cannot resolve task-scoped dependencies.
/// - Teardowns run in reverse order of setup (a dependency's own
///   dependencies are set up before it and torn down after it), once each,
///   and cancellation cannot skip them.
/// - Errors: see ``DependencyError``.
public struct Dependency<Value: Sendable>: Sendable {
    let key: DependencyKey
    let factory: @Sendable (DependencyResolver) async throws -> Provided<Value>

    /// The name used in errors and logs.
    public var name: String { key.name }
    /// How long an instance lives.
    public var scope: DependencyScope { key.scope }

    /// Declares a dependency whose factory returns a value and, optionally,
    /// its teardown (Python's generator or async context manager).
    ///
    /// - Parameters:
    ///   - name: the name used in errors and logs.
    ///   - scope: `.task` (default) or `.worker`.
    ///   - factory: makes the value; sync or async; may throw (the task then
    ///     fails with ``DependencyError`` `.factoryFailed` naming `name`).
    public init(
        _ name: String,
        scope: DependencyScope = .task,
        _ factory: @escaping @Sendable (DependencyResolver) async throws -> Provided<Value>
    ) {
        self.key = DependencyKey(name: name, scope: scope)
        self.factory = factory
    }

    /// Declares a dependency whose factory returns a plain value with
    /// nothing to tear down (Python's plain function).
    ///
    /// - Parameters:
    ///   - name: the name used in errors and logs.
    ///   - scope: `.task` (default) or `.worker`.
    ///   - factory: makes the value; sync or async; may throw.
    ///
    /// Disfavoured, so that a factory that only throws (its type fits both
    /// initializers) is not ambiguous.
    @_disfavoredOverload
    public init(
        _ name: String,
        scope: DependencyScope = .task,
        _ factory: @escaping @Sendable (DependencyResolver) async throws -> Value
    ) {
        self.key = DependencyKey(name: name, scope: scope)
        self.factory = { resolver in .value(try await factory(resolver)) }
    }

    /// The factory with the value's type erased, for the store.
    var erasedFactory: @Sendable (DependencyResolver) async throws -> ErasedProvision {
        let factory = self.factory
        return { resolver in
            ErasedProvision(try await factory(resolver))
        }
    }
}

/// A ``Provided`` value without its type, as a ``DependencyStore`` keeps it.
struct ErasedProvision: Sendable {
    var value: any Sendable
    var teardown: (@Sendable (DependencyOutcome) async throws -> Void)?

    init<Value: Sendable>(_ provided: Provided<Value>) {
        let value = provided.value
        self.value = value
        if let teardown = provided.teardown {
            self.teardown = { outcome in try await teardown(value, outcome) }
        } else {
            self.teardown = nil
        }
    }
}
