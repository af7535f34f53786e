/// A handler bound to its decoded arguments, ready to run.
struct PreparedCall: Sendable {
    /// The raw arguments, when preparing already decoded them (tasks that
    /// take any arguments); nil means "decode lazily from the body".
    var arguments: TaskArguments?
    /// Runs the handler and encodes what it returned (`.null` for `Void`).
    var run: @Sendable (TaskContext) async throws -> JSONValue
}
