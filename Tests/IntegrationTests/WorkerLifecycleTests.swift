import AMQP
import Foundation
import QTasks
import QTasksRabbitMQ
import QTasksResultStores
import Testing

/// The worker process killed or stopped while tasks run.
@Suite(.enabled(if: IntegrationEnvironment.enabled, "no RabbitMQ reachable at QTASKS_URL; deploy/test.sh starts one"),
       .timeLimit(.minutes(2)))
struct WorkerLifecycleTests {
    /// SIGKILL while `sleep 10` runs: the unacknowledged delivery returns to
    /// the queue, and a new worker runs it again and answers. (Ten seconds,
    /// not three: on a starved machine a 3 s task once ended before the
    /// kill landed.)
    @Test func sigkillWhileATaskRunsThenRestartRunsItAgain() async throws {
        try await TestScope.run("sigkill") { scope in
            let first = try await scope.startWorker(concurrency: 1, prefetch: 1)
            let uuid = UUID().uuidString.lowercased()
            try await scope.publishTask(#"{"uuid": "\#(uuid)", "task_name": "sleep", "args": [10]}"#, correlationID: uuid)

            // Running: delivered to the only consumer, nothing ready.
            try await waitUntil("the sleep task to be delivered to the worker", timeout: 30) {
                let info = try await scope.admin.queueInfo(scope.queue)
                return info?.messageCount == 0 && info?.consumerCount == 1
            }
            first.signal(SIGKILL)
            let ended = await first.waitForExit(timeout: 10)
            #expect(ended == .signaled(SIGKILL))
            #expect(try await scope.admin.get(scope.replyQueue) == nil, "no result from the killed worker")

            // Not acknowledged: back in the queue once the connection died.
            try await waitUntil("the task to return to the queue", timeout: 15) {
                let info = try await scope.admin.queueInfo(scope.queue)
                return info?.messageCount == 1 && info?.consumerCount == 0
            }

            let second = try await scope.startWorker(concurrency: 1, prefetch: 1)
            let reply = try await scope.nextReply(timeout: 60, "the result of the redelivered task")
            #expect(reply.correlationID == uuid)
            reply.expectDocumented(uuid: uuid, taskName: "sleep", status: "success", returning: 10)
            await scope.stopGracefully(second)
            #expect(try await scope.admin.queueInfo(scope.queue)?.messageCount == 0)
            #expect(try await scope.admin.get(scope.deadLetterQueue) == nil)
        }
    }

    /// SIGTERM while five `sleep 2` run (concurrency 5): they finish, their
    /// results arrive, they are acknowledged, and the process exits 0.
    ///
    /// The worker records task events in a SQLite result store: the test
    /// sends SIGTERM once all five have started there (a fixed 0.5 s after
    /// their delivery was a guess a loaded machine could miss: a delivery
    /// not started by SIGTERM is requeued, and its result never comes).
    @Test func sigtermLetsInFlightTasksFinishAndExitsZero() async throws {
        let store = try TestResultStore.sqlite()
        defer { store.remove() }
        try await TestScope.run("sigterm") { scope in
            let worker = try await scope.startWorker(
                on: scope.queue, concurrency: 5,
                arguments: ["--prefetch", "5", "--shutdown-grace", "30"] + store.arguments)
            let uuids = (0..<5).map { _ in UUID().uuidString.lowercased() }
            for uuid in uuids {
                try await scope.publishTask(#"{"uuid": "\#(uuid)", "task_name": "sleep", "args": [2]}"#, correlationID: uuid)
            }
            let records = try await ResultStores.open(url: store.url)
            var started: [Date] = []
            try await waitUntil("all five tasks to start", timeout: 60) {
                started = []
                for uuid in uuids {
                    guard let record = try await records.record(for: uuid),
                        let event = record.events.first(where: { $0.kind == .started })
                    else { return false }
                    started.append(event.timestamp)
                }
                return true
            }
            await records.close()
            // The first of them ends 2 s after it started: the stop waits
            // at least until then (measured from the tasks' own start, not
            // from the test's pace).
            let firstEnd = (started.min() ?? Date()).addingTimeInterval(2)
            let signalledAt = Date()
            worker.signal(SIGTERM)

            var results: [String: ResultMessage] = [:]
            for _ in uuids {
                let reply = try await scope.nextReply(timeout: 60, "the results of the in-flight tasks")
                results[reply.correlationID ?? "?"] = reply
            }
            #expect(Set(results.keys) == Set(uuids))
            for (uuid, reply) in results {
                reply.expectDocumented(uuid: uuid, taskName: "sleep", status: "success", returning: 2)
            }
            let ended = await worker.waitForExit(timeout: 30)
            #expect(ended == .exited(0), "\(worker.stderrTail())")
            #expect(Date() >= firstEnd, "it waited for the tasks (signalled \(firstEnd.timeIntervalSince(signalledAt)) s before the first could end)")
            // Acknowledged: an unacknowledged delivery would be back in the
            // queue now that the worker's connection is closed.
            let info = try await scope.admin.queueInfo(scope.queue)
            #expect(info?.messageCount == 0)
            #expect(info?.consumerCount == 0)
            #expect(try await scope.admin.get(scope.deadLetterQueue) == nil)
            let log = worker.standardErrorText
            #expect(log.contains("graceful shutdown"), "\(log)")
            #expect(!log.contains("requeued"), "\(log)")
        }
    }
}
