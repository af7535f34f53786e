import ArgumentParser
import Foundation
import QTasks
import QTasksState
import QTasksStateStores
import CommandSupport

/// The options every `qtasks state` command shares: the backend, the
/// namespace, the key.
struct StateOptions: ParsableArguments {
    @Option(
        name: .customLong("state"),
        help: ArgumentHelp(
            "State backend URL (default: $QTASKS_STATE_URL, else sqlite://<cwd>/.qtasks-state.db).", valueName: "url"))
    var url: String?

    @OptionGroup var urlFile: StateURLFileOption

    @Argument(help: "The state's namespace, e.g. MyState (a StateNamespace type's name).")
    var namespace: String

    @Option(help: "The state's key within the namespace (a user, chat or workflow id); none by default.")
    var key: String?

    /// `--state`, else `--state-file`, else `QTASKS_STATE_URL`, else
    /// `QTASKS_STATE_URL_FILE`, else the default SQLite file.
    var resolvedURL: String {
        StateStores.resolvedURL(try? SecretURL.state(flag: url, file: urlFile))
    }

    /// The state the command works on.
    var id: StateID { StateID(namespace: namespace, key: key) }

    func validate() throws {
        _ = try SecretURL.state(flag: url, file: urlFile)
        do {
            try id.validate()
        } catch {
            throw ValidationError(error.message)
        }
    }

    /// Opens the backend, runs `body` on the state's handle, closes the
    /// backend; turns a ``StateError`` into a message and an exit status.
    func withState<T>(_ body: (AnyState) async throws -> T) async throws -> T {
        let url = resolvedURL
        let store: any StateStore
        do {
            store = try await StateStores.open(url: url)
        } catch {
            throw Self.exit(error, doing: "cannot open the State backend \(StateStores.redactedURL(url))")
        }
        do {
            let result = try await body(AnyState(namespace: namespace, key: key, store: store))
            await store.close()
            return result
        } catch {
            await store.close()
            throw Self.exit(error, doing: "state \(id)")
        }
    }

    /// Prints the error and returns the exit status for it.
    static func exit(_ error: any Error, doing what: String) -> any Error {
        if let error = error as? ExitCode { return error }
        guard let error = error as? StateError else {
            printError("qtasks: \(what): \(error)")
            return ExitStatus.brokerFailure
        }
        // StateError messages name the URL (redacted), the state and the field.
        printError("qtasks: \(error.message)")
        switch error.code {
        case .invalidURL, .invalidArgument, .encoding:
            return ExitStatus.usage
        default:
            return ExitStatus.brokerFailure
        }
    }
}

/// Prints compact JSON (keys sorted, non-ASCII unescaped) and flushes.
func printJSON(_ value: JSONValue) {
    print(value.description)
    fflush(nil)
}
