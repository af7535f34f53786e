/// A task declared once (its name, argument types and result type) and
/// shared by the producers that send it and the workers that run it.
///
/// ```swift
/// enum Tasks {
///     static let add = TaskDefinition("add", arguments: Int.self, Int.self, returning: Int.self)
///     static let notify = TaskDefinition("notify", parameters: ["user", "text"], arguments: String.self, String.self)
/// }
///
/// try app.register(Tasks.add) { a, b in a + b }                      // worker
/// let sum = try await client.send(Tasks.add, 2, 3).value(timeout: .seconds(5))   // producer: an Int
/// ```
///
/// ``TaskApp/register(_:_:)-(_,(Argument)->Output)`` takes a handler
/// whose parameter and return types are the definition's (with the
/// ``TaskContext`` first: ``TaskApp/register(_:_:)-(_,(TaskContext,Argument)->Output)``);
/// ``TaskClient/send(_:_:queue:priority:)``
/// takes arguments of those types and gives a ``TaskHandle`` whose
/// ``TaskHandle/value(timeout:)`` is of the result type. A wrong argument
/// type or count does not compile.
///
/// Underneath, nothing changes on the wire: the task is sent as
/// `{"task_name": name, "args": [...]}` (docs/wire-format.md), so foreign
/// producers reach the same handler by name, and the result's `returning`
/// is the handler's return value encoded as JSON. A task that returns
/// nothing has the result type ``NoResult`` (`returning` is null).
public struct TaskDefinition<each Argument: Codable & Sendable, Output: Codable & Sendable>: Sendable {
    /// The `task_name` on the wire.
    public let name: String
    /// The parameter names, so that `kwargs` from foreign producers can
    /// fill them and errors can name them; nil for positional only.
    public let parameterNames: [String]?
    /// The task's queue, retry policy and time limit. Its ``TaskOptions/queue``
    /// is where ``TaskClient`` sends it unless told otherwise.
    public var options: TaskOptions
    /// True for a task that takes any arguments and reads them from
    /// ``TaskContext/arguments`` (Python's `*args, **kwargs`): see
    /// ``init(acceptingAnyArguments:returning:options:)``.
    public let acceptsAnyArguments: Bool

    /// - Parameters:
    ///   - name: the `task_name` on the wire.
    ///   - parameters: the parameter names (one per argument type), for
    ///     `kwargs` and error messages; nil for positional arguments only.
    ///   - arguments: the argument types, in order; each is encoded to and
    ///     decoded from JSON with `Codable`.
    ///   - returning: the result type.
    ///   - options: the default queue, retry policy and time limit.
    public init(
        _ name: String,
        parameters: [String]? = nil,
        arguments: repeat (each Argument).Type,
        returning: Output.Type,
        options: TaskOptions = TaskOptions()
    ) {
        self.name = name
        self.parameterNames = parameters
        self.options = options
        self.acceptsAnyArguments = false
    }

    /// A task that takes any arguments (like Python's `*args, **kwargs`):
    /// its handler takes the ``TaskContext`` and reads them from
    /// ``TaskContext/arguments``. Spell the type with the result type alone,
    /// so that it has no argument types:
    ///
    /// ```swift
    /// static let echo = TaskDefinition<JSONValue>(acceptingAnyArguments: "echo", returning: JSONValue.self)
    /// try app.register(echo) { (context: TaskContext) in JSONValue.array(context.arguments.args) }
    /// ```
    ///
    /// Producers send it by name (``TaskClient/send(_:args:kwargs:queue:priority:)``)
    /// or with no arguments.
    public init(acceptingAnyArguments name: String, returning: Output.Type, options: TaskOptions = TaskOptions()) {
        self.name = name
        self.parameterNames = nil
        self.options = options
        self.acceptsAnyArguments = true
    }
}

extension TaskDefinition where Output == NoResult {
    /// A task that returns nothing (`returning` is null).
    ///
    /// - Parameters: as ``init(_:parameters:arguments:returning:options:)``.
    public init(
        _ name: String,
        parameters: [String]? = nil,
        arguments: repeat (each Argument).Type,
        options: TaskOptions = TaskOptions()
    ) {
        self.name = name
        self.parameterNames = parameters
        self.options = options
        self.acceptsAnyArguments = false
    }
}

extension TaskDefinition {
    /// The arguments as the JSON array of the message's `args`.
    ///
    /// - Throws: `EncodingError` for an argument that does not encode
    ///   (a non-finite `Double`, say).
    func encode(_ arguments: repeat each Argument) throws -> [JSONValue] {
        var args: [JSONValue] = []
        for argument in repeat each arguments {
            args.append(try JSONValue(encoding: argument))
        }
        return args
    }
}
