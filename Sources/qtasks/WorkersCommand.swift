import ArgumentParser
import CommandSupport
import Foundation
import QTasks

/// `qtasks workers [--json]`: the live workers, from their heartbeats in
/// the result store.
struct WorkersCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "workers",
        abstract: "List the live workers from their heartbeats in the result store.",
        discussion: """
            A worker with a result store sends a heartbeat every --heartbeat-interval seconds (default \
            5); the store keeps it for 3 intervals, so a worker that died drops out of this list \
            that long after its last heartbeat, and one that stopped gracefully at once.

            One line per worker: id, host, pid, queues, concurrency, tasks in flight, processed, \
            failed, uptime, version, seconds since its last heartbeat. --json prints one JSON object \
            per worker and line (the heartbeat, docs/results.md) instead.

            Exit status: 0 (also when no worker is live); 4 the store could not be reached; 64 bad usage.
            """)

    @OptionGroup(title: "Result store")
    var store: ResultStoreOptions

    @Flag(help: "Print one JSON object per worker and line.")
    var json = false

    func validate() throws {
        try store.validateGiven()
    }

    func run() async throws {
        let workers = try await store.withStore { try await $0.liveWorkers() }
            .sorted { ($0.host, $0.workerID) < ($1.host, $1.workerID) }
        if json {
            for worker in workers { try JSONLines.print(worker) }
            return
        }
        guard !workers.isEmpty else {
            printError("qtasks: no live workers")
            return
        }
        print(Self.table(workers, now: Date()))
        fflush(nil)
    }

    static func table(_ workers: [WorkerHeartbeat], now: Date) -> String {
        let header = [
            "WORKER", "HOST", "PID", "QUEUES", "CONCURRENCY", "IN FLIGHT", "PROCESSED", "FAILED", "UPTIME", "VERSION", "SEEN",
        ]
        let rows = workers.map { worker in
            [
                worker.workerID, worker.host, String(worker.pid), worker.queues.joined(separator: ","),
                String(worker.concurrency), String(worker.inFlight), String(worker.processed), String(worker.failed),
                TimeText.age(now.timeIntervalSince(worker.startedAt)), worker.version,
                TimeText.age(now.timeIntervalSince(worker.sentAt)) + " ago",
            ]
        }
        return TextTable.render(header: header, rows: rows, rightAligned: [2, 4, 5, 6, 7, 8])
    }
}
