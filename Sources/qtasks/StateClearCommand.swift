import ArgumentParser
import QTasksState

/// `qtasks state clear NAMESPACE [--key K]`.
struct StateClearCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "clear",
        abstract: "Remove every field of a state: it no longer exists.")

    @OptionGroup var options: StateOptions

    func run() async throws {
        try await options.withState { state in
            try await state.clear()
        }
    }
}
