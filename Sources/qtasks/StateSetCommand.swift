import ArgumentParser
import CommandSupport
import QTasks
import QTasksState

/// `qtasks state set NAMESPACE [--key K] FIELD VALUE`.
struct StateSetCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "set",
        abstract: "Set one field of a state, keeping the others.",
        discussion: """
            VALUE is read as JSON when it parses as JSON (1, 2.5, true, null, "text", [1,2], {"a":1}), \
            and as a plain string otherwise, as `qtasks send` reads its arguments: \
            `qtasks state set MyState state await_phone` stores the string "await_phone"; to store \
            the string "1", quote it as JSON: '"1"'. A VALUE that starts with a dash follows `--`.
            """)

    @OptionGroup var options: StateOptions

    @Argument(help: "The field to set.")
    var field: String

    @Argument(help: "The value: JSON, or a plain string.")
    var value: String

    @Option(
        help: "Seconds until the whole state expires (from this write); by default the expiry is kept.",
        transform: SecondsOption.parser("--ttl must be a positive number of seconds") { $0 > 0 && $0 < 1e9 })
    var ttl: Duration?

    func run() async throws {
        let json = SendCommand.argumentValue(value)
        try await options.withState { state in
            try await state.store.set(field, to: json, in: state.id, ttl: ttl)
        }
    }
}
