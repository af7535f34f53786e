extension TaskApp {
    /// Registers the handler of a typed task: its parameters and return
    /// type are the definition's.
    ///
    /// ```swift
    /// try app.register(Tasks.add) { a, b in a + b }
    /// ```
    ///
    /// - Throws: ``TaskRegistrationError`` when the name is taken or the
    ///   definition's parameter names do not match its argument count.
    // Disfavoured, so that a closure of a task without result (whose
    // body returns Void) picks the Void forms below without annotations.
    @_disfavoredOverload
    public func register<each Argument, Output>(
        _ task: TaskDefinition<repeat each Argument, Output>,
        _ handler: @escaping @Sendable (repeat each Argument) async throws -> Output
    ) throws {
        try refuseAnyArguments(task)
        try register(task.name, parameters: task.parameterNames, options: task.options, handler)
    }

    /// Registers the handler of a typed task that takes the
    /// ``TaskContext`` first (for the uuid, attempt, logger, dependencies).
    ///
    /// A definition with no arguments takes none: unlike the name-based
    /// form taking only the context, it does not accept any arguments.
    ///
    /// - Throws: ``TaskRegistrationError``.
    @_disfavoredOverload
    public func register<each Argument, Output>(
        _ task: TaskDefinition<repeat each Argument, Output>,
        _ handler: @escaping @Sendable (TaskContext, repeat each Argument) async throws -> Output
    ) throws {
        try registerStrict(task, handler)
    }

    /// Registers the handler of a typed task that returns nothing.
    ///
    /// - Throws: ``TaskRegistrationError``.
    public func register<each Argument>(
        _ task: TaskDefinition<repeat each Argument, NoResult>,
        _ handler: @escaping @Sendable (repeat each Argument) async throws -> Void
    ) throws {
        try refuseAnyArguments(task)
        try register(task.name, parameters: task.parameterNames, options: task.options) { (argument: repeat each Argument) in
            try await handler(repeat each argument)
            return NoResult()
        }
    }

    /// Registers the handler of a typed task that takes the
    /// ``TaskContext`` first and returns nothing.
    ///
    /// - Throws: ``TaskRegistrationError``.
    public func register<each Argument>(
        _ task: TaskDefinition<repeat each Argument, NoResult>,
        _ handler: @escaping @Sendable (TaskContext, repeat each Argument) async throws -> Void
    ) throws {
        try registerStrict(task) { (context: TaskContext, argument: repeat each Argument) in
            try await handler(context, repeat each argument)
            return NoResult()
        }
    }

    private func registerStrict<each Argument, Output>(
        _ task: TaskDefinition<repeat each Argument, Output>,
        _ handler: @escaping @Sendable (TaskContext, repeat each Argument) async throws -> Output
    ) throws {
        if task.acceptsAnyArguments {
            // Only the context: the name-based form that takes any
            // arguments, handed over raw.
            try register(task.name, options: task.options) { (context: TaskContext, argument: repeat each Argument) in
                try await handler(context, repeat each argument)
            }
            return
        }
        try addTyped(
            task.name, parameters: task.parameterNames, options: task.options,
            count: Self.count(repeat (each Argument).self)
        ) { reader in
            let values = (repeat try reader!.next((each Argument).self))
            return { context in try JSONValue(encoding: try await handler(context, repeat each values)) }
        }
    }

    /// A task taking any arguments reads them from its context: a handler
    /// without the context could not see them.
    private func refuseAnyArguments<each Argument, Output>(_ task: TaskDefinition<repeat each Argument, Output>) throws {
        guard task.acceptsAnyArguments else { return }
        throw TaskRegistrationError(
            .invalidParameters,
            "task '\(task.name)' accepts any arguments: register a handler that takes the TaskContext, to read them from context.arguments",
            taskName: task.name)
    }
}
