import ArgumentParser
import QTasksState

/// `qtasks state delete NAMESPACE [--key K] FIELD`.
struct StateDeleteCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "delete",
        abstract: "Remove one field of a state (not an error when it is not set).")

    @OptionGroup var options: StateOptions

    @Argument(help: "The field to remove.")
    var field: String

    func run() async throws {
        try await options.withState { state in
            try await state.delete(field)
        }
    }
}
