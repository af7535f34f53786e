/// A task as the registry stores it: its name and how to turn a message's
/// arguments into a ``PreparedCall``.
struct RegisteredTask: Sendable {
    var name: String
    /// nil when the handler takes no typed parameters.
    var parameterNames: [String]?
    var parameterCount: Int
    /// Retry policy and time limit given at registration.
    var options: TaskOptions = TaskOptions()
    /// Decodes `args`/`kwargs` from the body's top-level container.
    /// Throws ``TaskInputError`` (or a `DecodingError`, which the caller
    /// words as an argument error).
    var prepare: @Sendable (KeyedDecodingContainer<EnvelopeKey>) throws -> PreparedCall
}
