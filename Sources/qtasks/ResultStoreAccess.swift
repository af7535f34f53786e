import ArgumentParser
import CommandSupport
import Foundation
import QTasks
import QTasksResultStores

/// How `qtasks result`, `tasks` and `workers` reach the result store.
extension ResultStoreOptions {
    /// Refuses a command that reads a store when none is given.
    ///
    /// - Throws: `ValidationError` (exit 64).
    func validateGiven() throws {
        guard try resolvedURL() != nil else {
            throw ValidationError(
                "no result store: give --result-store URL (or --result-store-file, $QTASKS_RESULT_STORE), the store the workers write with --result-store")
        }
    }

    /// Opens the store, runs `body` with it, closes it; a
    /// ``ResultStoreError`` is printed and becomes an exit status (64 for
    /// a bad URL, 3 for a wait that ran out, 4 otherwise).
    func withStore<T>(_ body: (any ResultStore) async throws -> T) async throws -> T {
        let store: any ResultStore
        do {
            // A reader never creates a store: a mistyped SQLite path would
            // otherwise leave an empty database and say "no tasks".
            if let url = try resolvedURL(), let file = try ResultStores.sqliteFile(of: url),
                !FileManager.default.fileExists(atPath: file)
            {
                throw ResultStoreError(.unavailable, "no such SQLite file: \(file) (no worker has written to it)")
            }
            guard let opened = try await open() else { throw ExitStatus.usage }
            store = opened
        } catch {
            throw Self.exit(error, doing: "cannot open the result store \(redactedURL)")
        }
        do {
            let value = try await body(store)
            await store.close()
            return value
        } catch {
            await store.close()
            throw Self.exit(error, doing: "result store \(redactedURL)")
        }
    }

    /// Prints the error and returns the exit status for it.
    private static func exit(_ error: any Error, doing what: String) -> any Error {
        if let error = error as? ExitCode { return error }
        guard let error = error as? ResultStoreError else {
            printError("qtasks: \(what): \(error)")
            return ExitStatus.brokerFailure
        }
        printError("qtasks: \(what): \(error.message)")
        switch error.code {
        case .invalidURL: return ExitStatus.usage
        case .timedOut: return ExitStatus.timeout
        default: return ExitStatus.brokerFailure
        }
    }
}
