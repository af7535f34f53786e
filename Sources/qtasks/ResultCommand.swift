import ArgumentParser
import CommandSupport
import Foundation
import QTasks

/// `qtasks result UUID [--wait SECONDS] [--json]`: a task's record from the
/// result store.
struct ResultCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "result",
        abstract: "Print a task's record from the result store: status, result or traceback, attempts, worker, times.",
        discussion: """
            Reads the store the workers write (--result-store on qtasks-example, or a worker \
            configured with a result store); `qtasks send --result-store` and qtasks-scheduler \
            record each task they send, so a task is found (status new) before a worker took it. \
            Works after the sender exited: `qtasks send TASK --wait 0` prints the uuid to ask for.

            With --wait SECONDS, waits until the task ended (success, error or cancel). --json \
            prints the record as one JSON object (docs/results.md) instead of text.

            Exit status, as `qtasks send`: 0 the task succeeded; 1 it ended with an error or a \
            cancel; 2 the store has no record of it (never recorded, or expired); 3 it has not ended \
            (within --wait); 4 the store could not be reached; 64 bad usage.
            """)

    @OptionGroup(title: "Result store")
    var store: ResultStoreOptions

    @Argument(help: "The task's uuid (as `qtasks send` prints it).")
    var uuid: String

    @Option(
        help: ArgumentHelp("Seconds to wait for the task to end (default: 0, print what the store has now).", valueName: "seconds"),
        transform: SecondsOption.parser("--wait must be a number of seconds from 0 to \(Int(SendCommand.longestWait)) (a week)") {
            (0...SendCommand.longestWait).contains($0)
        })
    var wait: Duration = .zero

    @Flag(help: "Print the record as one JSON object.")
    var json = false

    func validate() throws {
        try store.validateGiven()
        guard !uuid.isEmpty else { throw ValidationError("the uuid must not be empty") }
    }

    func run() async throws {
        let record: TaskRecord = try await store.withStore { store in
            if wait > .zero {
                do {
                    return try await store.waitForRecord(of: uuid, timeout: wait)
                } catch let error as ResultStoreError where error.code == .timedOut {
                    printError("qtasks: \(error.message)")
                    // No record at all is "not found" (2), as without --wait.
                    throw try await store.record(for: uuid) == nil ? ExitStatus.notFound : ExitStatus.timeout
                }
            }
            guard let record = try await store.record(for: uuid) else {
                printError("qtasks: the result store has no record of task \(uuid) (not sent or run with this store, or expired)")
                throw ExitStatus.notFound
            }
            return record
        }
        if json {
            try JSONLines.print(record)
        } else {
            print(TerminalText.safe(RecordText.lines(record).joined(separator: "\n")))
            fflush(nil)
        }
        if let failure = ExitStatus.forTask(record.status) {
            if failure == ExitStatus.timeout {
                printError("qtasks: task \(uuid) has not ended: it is '\(record.status)' (attempt \(record.attempt))")
            }
            throw failure
        }
    }
}
