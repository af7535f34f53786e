import ArgumentParser
import QTasks
import QTasksState
import QTasksStateStores
import CommandSupport

/// `qtasks state keys [NAMESPACE] [--limit N]`: lists namespaces, or the keys
/// of one namespace (`StateStore.namespaces(limit:)`, `keys(in:limit:)`).
struct StateKeysCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keys",
        abstract: "List the namespaces that hold states, or the keys of one namespace's states.",
        discussion: """
            Prints one compact JSON array, sorted by UTF-8 bytes: without NAMESPACE, the namespaces \
            that hold at least one live state (["MyState","qtasks-schedule"]); with NAMESPACE, the \
            keys of its live states, the state without key as null, first ([null,"42","43"]). \
            Expired and empty states are not listed. At most --limit names are printed; when there \
            are more, a note says so on standard error (the exit status stays 0). With Redis this \
            walks the whole database with SCAN (never KEYS).
            """)

    @Option(
        name: .customLong("state"),
        help: ArgumentHelp(
            "State backend URL (default: $QTASKS_STATE_URL, else sqlite://<cwd>/.qtasks-state.db).", valueName: "url"))
    var url: String?

    @OptionGroup var urlFile: StateURLFileOption

    @Argument(help: "The namespace whose keys to list; all namespaces by default.")
    var namespace: String?

    @Option(help: "The most names to print (default 1000).")
    var limit: Int = 1_000

    func validate() throws {
        _ = try SecretURL.state(flag: url, file: urlFile)
        guard limit > 0 && limit < Int.max else { throw ValidationError("--limit must be a positive number") }
        if let namespace {
            do {
                try StateID(namespace: namespace).validate()
            } catch {
                throw ValidationError(error.message)
            }
        }
    }

    func run() async throws {
        let url = StateStores.resolvedURL(try? SecretURL.state(flag: url, file: urlFile))
        let store: any StateStore
        do {
            store = try await StateStores.open(url: url)
        } catch {
            throw StateOptions.exit(error, doing: "cannot open the State backend \(StateStores.redactedURL(url))")
        }
        let names: [JSONValue]
        do {
            // One more than printed: tells whether there are more.
            if let namespace {
                names = try await store.keys(in: namespace, limit: limit + 1).map { $0.map(JSONValue.string) ?? .null }
            } else {
                names = try await store.namespaces(limit: limit + 1).map(JSONValue.string)
            }
            await store.close()
        } catch {
            await store.close()
            throw StateOptions.exit(error, doing: namespace.map { "keys of namespace \($0)" } ?? "namespaces")
        }
        printJSON(.array(Array(names.prefix(limit))))
        if names.count > limit {
            printError(
                "qtasks: more than \(limit) \(namespace == nil ? "namespaces" : "keys"); only the first \(limit) printed (--limit)")
        }
    }
}
