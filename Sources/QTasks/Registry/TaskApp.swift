import Synchronization

/// The tasks a worker can run, by name.
///
/// Register handlers once at startup; a ``Worker`` takes a snapshot of the
/// tasks when it starts running, so tasks registered later are not seen by
/// it.
///
/// Register a task through its ``TaskDefinition``, shared with the
/// producers that send it; the name-based forms below register by name
/// alone, for dynamic use (a typed task is found by its name too):
///
/// ```swift
/// let app = TaskApp(name: "example")
/// try app.register(Tasks.add) { a, b in a + b }           // TaskDefinition<Int, Int, Int>
/// try app.register("add_named", parameters: ["a", "b"]) { (a: Int, b: Int) in a + b }
/// try app.register("greet") { (context: TaskContext, name: String) in "hi \(name) from \(context.uuid)" }
/// try app.register("echo") { (context: TaskContext) in JSONValue.array(context.arguments.args) }
/// ```
///
/// Handlers may be sync or async, may throw, and return any `Encodable`
/// (the result's `returning`) or `Void` (`returning` is null). Arguments
/// are decoded straight from the message body into the parameter types:
/// positional `args` first, then `kwargs` by the names in `parameters`.
/// An omitted `Optional` parameter is nil.
public final class TaskApp: Sendable {
    /// The application's name, for logs.
    public let name: String
    private let tasks = Mutex<[String: RegisteredTask]>([:])

    /// - Parameter name: the application's name, for logs.
    public init(name: String = "qtasks") {
        self.name = name
    }

    /// The registered task names, sorted.
    public var taskNames: [String] {
        tasks.withLock { $0.keys.sorted() }
    }

    /// The default queue a task was registered with (``TaskOptions/queue``),
    /// nil when it has none or is not registered.
    public func queue(for taskName: String) -> String? {
        tasks.withLock { $0[taskName]?.options.queue }
    }

    /// The registered tasks whose arguments are not recorded
    /// (``TaskOptions/recordsArguments`` false).
    var tasksWithSecretArguments: Set<String> {
        tasks.withLock { tasks in Set(tasks.filter { !$0.value.options.recordsArguments }.keys) }
    }

    /// The queues the registered tasks name as their default, sorted,
    /// plus `"default"` when some task names none: what a worker running
    /// every task of this app consumes.
    public var defaultQueues: [String] {
        let queues = tasks.withLock { tasks in Set(tasks.values.map { $0.options.queue ?? "default" }) }
        return queues.sorted()
    }

    /// Registers a handler with typed parameters.
    ///
    /// - Parameters:
    ///   - name: the `task_name` producers send.
    ///   - parameters: the parameter names, so that `kwargs` can fill them
    ///     and errors can name them; nil accepts positional arguments only.
    ///   - options: the task's retry policy and time limit (default: the
    ///     worker's).
    ///   - handler: the task; its parameter types decode from JSON.
    /// - Throws: ``TaskRegistrationError`` when `name` is taken or
    ///   `parameters` does not match the handler's parameter count.
    public func register<each Argument: Decodable & Sendable, Result: Encodable & Sendable>(
        _ name: String,
        parameters: [String]? = nil,
        options: TaskOptions = TaskOptions(),
        _ handler: @escaping @Sendable (repeat each Argument) async throws -> Result
    ) throws {
        try add(name, parameters: parameters, options: options, count: Self.count(repeat (each Argument).self)) { reader in
            let values = (repeat try reader!.next((each Argument).self))
            return { _ in try JSONValue(encoding: try await handler(repeat each values)) }
        }
    }

    /// Registers a handler with typed parameters that returns nothing
    /// (`returning` is null).
    ///
    /// - Throws: ``TaskRegistrationError``.
    public func register<each Argument: Decodable & Sendable>(
        _ name: String,
        parameters: [String]? = nil,
        options: TaskOptions = TaskOptions(),
        _ handler: @escaping @Sendable (repeat each Argument) async throws -> Void
    ) throws {
        try add(name, parameters: parameters, options: options, count: Self.count(repeat (each Argument).self)) { reader in
            let values = (repeat try reader!.next((each Argument).self))
            return { _ in
                try await handler(repeat each values)
                return .null
            }
        }
    }

    /// Registers a handler that takes the ``TaskContext`` first, then typed
    /// parameters.
    ///
    /// A handler taking only the context accepts any arguments (like
    /// Python's `*args, **kwargs`): read them from
    /// ``TaskContext/arguments``.
    ///
    /// - Throws: ``TaskRegistrationError``.
    public func register<each Argument: Decodable & Sendable, Result: Encodable & Sendable>(
        _ name: String,
        parameters: [String]? = nil,
        options: TaskOptions = TaskOptions(),
        _ handler: @escaping @Sendable (TaskContext, repeat each Argument) async throws -> Result
    ) throws {
        let count = Self.count(repeat (each Argument).self)
        try add(name, parameters: parameters, options: options, count: count, acceptsAnyArguments: count == 0) { reader in
            let values = (repeat try reader!.next((each Argument).self))
            return { context in try JSONValue(encoding: try await handler(context, repeat each values)) }
        }
    }

    /// Registers a handler that takes the ``TaskContext`` first and returns
    /// nothing (`returning` is null).
    ///
    /// - Throws: ``TaskRegistrationError``.
    public func register<each Argument: Decodable & Sendable>(
        _ name: String,
        parameters: [String]? = nil,
        options: TaskOptions = TaskOptions(),
        _ handler: @escaping @Sendable (TaskContext, repeat each Argument) async throws -> Void
    ) throws {
        let count = Self.count(repeat (each Argument).self)
        try add(name, parameters: parameters, options: options, count: count, acceptsAnyArguments: count == 0) { reader in
            let values = (repeat try reader!.next((each Argument).self))
            return { context in
                try await handler(context, repeat each values)
                return .null
            }
        }
    }

    /// The handler's half of preparing a call: decodes the parameters with
    /// the reader (nil, and never used, when there are none) and returns the
    /// call. Kept in the generic overloads so that the parameter pack is
    /// expanded where it is declared.
    private typealias Binder = @Sendable (ArgumentReader?) throws -> @Sendable (TaskContext) async throws -> JSONValue

    private func add(
        _ name: String,
        parameters: [String]?,
        options: TaskOptions,
        count: Int,
        acceptsAnyArguments: Bool = false,
        bind: @escaping Binder
    ) throws {
        if acceptsAnyArguments {
            // Only the context: any arguments, handed over raw. Binding no
            // parameters reads nothing: done once, not per task.
            let run = try bind(nil)
            try add(name, parameters: parameters, options: options, count: 0, acceptsAnyArguments: true) { source in
                switch source {
                case .container(let container):
                    return PreparedCall(arguments: try ArgumentReader.raw(from: container), run: run)
                case .values(let parsed):
                    return PreparedCall(arguments: parsed.taskArguments, run: run)
                }
            }
        } else {
            try addTyped(name, parameters: parameters, options: options, count: count) { try bind($0) }
        }
    }

    static func count<each T>(_ types: repeat (each T).Type) -> Int {
        var count = 0
        for _ in repeat each types { count += 1 }
        return count
    }

    /// Adds a task whose handler takes exactly `count` arguments, the
    /// context-only form included (typed definitions: no arguments means
    /// none, not any).
    ///
    /// `bind` gets nil, and is called once at registration, when there are
    /// no parameters: a call without arguments then costs no reader and no
    /// binding per task.
    func addTyped(
        _ name: String,
        parameters: [String]?,
        options: TaskOptions,
        count: Int,
        bind: @escaping @Sendable (ArgumentReader?) throws -> @Sendable (TaskContext) async throws -> JSONValue
    ) throws {
        let secret = !options.recordsArguments
        let unbound = count == 0 ? try bind(nil) : nil
        try add(name, parameters: parameters, options: options, count: count, acceptsAnyArguments: false) { source in
            if case .values(let parsed) = source, let unbound, ArgumentReader.fitsNoParameters(parsed) {
                return PreparedCall(arguments: parsed.taskArguments, run: unbound)
            }
            let reader = try ArgumentReader(
                taskName: name, parameterNames: parameters, parameterCount: count, source: source, secretArguments: secret)
            let run = try bind(reader)
            if case .values(let parsed) = source {
                return PreparedCall(arguments: parsed.taskArguments, run: run)
            }
            return PreparedCall(arguments: nil, run: run)
        }
    }

    /// A frozen copy of the tasks, for a worker.
    func catalog() -> TaskCatalog {
        TaskCatalog(tasks: tasks.withLock { $0 })
    }

    private func add(
        _ name: String,
        parameters: [String]?,
        options: TaskOptions,
        count: Int,
        acceptsAnyArguments: Bool,
        prepare: @escaping @Sendable (ArgumentSource) throws -> PreparedCall
    ) throws {
        if let parameters {
            if parameters.count != count && !acceptsAnyArguments {
                throw TaskRegistrationError(
                    .invalidParameters,
                    "task '\(name)': \(parameters.count) parameter names for a handler of \(count) parameters",
                    taskName: name
                )
            }
            if acceptsAnyArguments && !parameters.isEmpty {
                throw TaskRegistrationError(
                    .invalidParameters,
                    "task '\(name)': a handler taking only the context takes any arguments; it has no parameter names",
                    taskName: name
                )
            }
            if Set(parameters).count != parameters.count || parameters.contains("") {
                throw TaskRegistrationError(.invalidParameters, "task '\(name)': parameter names must be distinct and non-empty", taskName: name)
            }
        }
        let task = RegisteredTask(name: name, parameterNames: parameters, parameterCount: count, options: options, prepare: prepare)
        try tasks.withLock { tasks in
            guard tasks[name] == nil else {
                throw TaskRegistrationError(.duplicateTask, "task '\(name)' is already registered", taskName: name)
            }
            tasks[name] = task
        }
    }
}
