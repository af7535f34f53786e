import ArgumentParser
import QTasks
import QTasksState

/// `qtasks state get NAMESPACE [--key K] [FIELD]`.
struct StateGetCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "get",
        abstract: "Print a state as a JSON object, or one field's JSON value.",
        discussion: """
            Without FIELD, prints every field as one JSON object ({} when the state does not exist or \
            has expired). With FIELD, prints its JSON value ("await_phone", 1, {...}); a field that is \
            not set prints nothing and exits 2.
            """)

    @OptionGroup var options: StateOptions

    @Argument(help: "The field to print; all of them by default.")
    var field: String?

    func run() async throws {
        let value: JSONValue? = try await options.withState { state in
            if let field { return try await state.get(field) }
            return .object(try await state.getAll())
        }
        guard let value else {
            printError("qtasks: field '\(field ?? "")' is not set in state \(options.id)")
            throw ExitStatus.notFound
        }
        printJSON(value)
    }
}
