import ArgumentParser

/// `qtasks state get|set|delete|clear|keys`: reads, writes and lists State (the
/// `QTasksState` key-value store) directly, for operators and scripts.
struct StateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "state",
        abstract: "Read and write State (the key-value store task steps share) in a backend.",
        discussion: """
            Each command opens the backend named by --state, else the QTASKS_STATE_URL environment \
            variable, else the SQLite file .qtasks-state.db in the current directory (the default of \
            the workers started there): sqlite:///path/state.db, redis://[:password@]host:6379/0, \
            memory:// (empty, this process only).

            A state is a NAMESPACE (the StateNamespace type's name, e.g. MyState) plus an optional \
            --key (a user, chat or workflow id); it holds fields with JSON values. Output is compact \
            JSON with non-ASCII text unescaped.

            Exit status: 0 success; 2 `get NAMESPACE FIELD` found no such field; 4 the backend could \
            not be reached, refused the operation, or holds data that is not a State document; 64 bad \
            usage (malformed URL, unknown scheme, a namespace with ':', an empty key).
            """,
        subcommands: [
            StateGetCommand.self, StateSetCommand.self, StateDeleteCommand.self, StateClearCommand.self,
            StateKeysCommand.self,
        ])
}
