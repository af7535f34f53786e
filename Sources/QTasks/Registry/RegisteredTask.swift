/// A task as the registry stores it: its name and how to turn a message's
/// arguments into a ``PreparedCall``.
struct RegisteredTask: Sendable {
    var name: String
    /// nil when the handler takes no typed parameters.
    var parameterNames: [String]?
    var parameterCount: Int
    /// Retry policy and time limit given at registration.
    var options: TaskOptions = TaskOptions()
    /// Decodes `args`/`kwargs` from the body's top-level container or from
    /// the values the parser read (``ArgumentSource``).
    /// Throws ``TaskInputError`` (or a `DecodingError`, which the caller
    /// words as an argument error; from parsed values, any error means
    /// "read it through `JSONDecoder`").
    var prepare: @Sendable (ArgumentSource) throws -> PreparedCall
}
