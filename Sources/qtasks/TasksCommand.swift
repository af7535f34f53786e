import ArgumentParser
import CommandSupport
import Foundation
import QTasks

/// `qtasks tasks [--status S] [--task NAME] [--queue Q] [--since 1h]
/// [--limit N] [--offset N] [--json]`: recent task records.
struct TasksCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tasks",
        abstract: "List recent tasks from the result store, the most recently updated first.",
        discussion: """
            One line per task: updated (UTC), status, task, queue, attempts, duration, worker, \
            uuid; under a failed or retried task its traceback, indented. --json prints one JSON \
            object per line instead (the record, as `qtasks result --json`).

            --status takes QTasks' statuses (new, process, success, error, cancel, retry) or \
            event words (sent, started, running, succeeded, failed, cancelled, retried), and \
            finished or unfinished; repeat it or separate words with commas. --since takes an age: \
            90s, 30m, 1h, 2d, 1h30m.

            Exit status: 0 (also when nothing matches); 4 the store could not be reached; 64 bad usage.
            """)

    @OptionGroup(title: "Result store")
    var store: ResultStoreOptions

    @Option(help: ArgumentHelp("Only tasks in this status; repeat, or separate with commas.", valueName: "status"))
    var status: [String] = []

    @Option(help: ArgumentHelp("Only tasks of this name.", valueName: "name"))
    var task: String?

    @Option(help: "Only tasks whose latest delivery came from this queue.")
    var queue: String?

    @Option(help: ArgumentHelp("Only tasks updated within this age: 90s, 30m, 1h, 2d, 1h30m.", valueName: "age"))
    var since: String?

    @Option(help: "Most tasks to print.")
    var limit: Int = 50

    @Option(help: "Skip this many first (paging).")
    var offset: Int = 0

    @Flag(help: "Print one JSON object per task and line.")
    var json = false

    func validate() throws {
        try store.validateGiven()
        _ = try RecordFilters.statuses(in: status)
        if let since { _ = try RecordFilters.age(since) }
        guard (1...100_000).contains(limit) else { throw ValidationError("--limit must be 1...100000") }
        guard offset >= 0 else { throw ValidationError("--offset must be 0 or more") }
    }

    func run() async throws {
        let query = TaskRecordQuery(
            statuses: try RecordFilters.statuses(in: status), taskName: task, queue: queue,
            since: try since.map { Date() - Seconds.double(try RecordFilters.age($0)) }, limit: limit, offset: offset)
        let records = try await store.withStore { try await $0.records(matching: query) }
        if json {
            for record in records { try JSONLines.print(record) }
            return
        }
        guard !records.isEmpty else {
            printError("qtasks: no tasks match")
            return
        }
        print(Self.table(records))
        fflush(nil)
    }

    /// The table, with each traceback under its row.
    static func table(_ records: [TaskRecord]) -> String {
        let header = ["UPDATED", "STATUS", "TASK", "QUEUE", "ATTEMPTS", "DURATION", "WORKER", "UUID"]
        let rows = records.map { record in
            [
                TimeText.utc(record.updatedAt), record.status.rawValue, record.taskName, record.queue,
                String(record.attempt), record.duration.map(TimeText.seconds) ?? "-", record.workerID ?? "-",
                record.uuid,
            ]
        }
        let lines = TextTable.render(header: header, rows: rows, rightAligned: [4, 5])
            .split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        var output = [lines[0]]
        for (record, line) in zip(records, lines.dropFirst()) {
            output.append(line)
            if let traceback = record.failure?.traceback, record.status == .error || record.status == .retry {
                output += RecordText.indented(TerminalText.safe(traceback))
            }
        }
        return output.joined(separator: "\n")
    }
}
