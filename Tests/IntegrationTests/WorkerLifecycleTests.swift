import AMQP
import Foundation
import QTasks
import QTasksRabbitMQ
import Testing

/// The worker process killed or stopped while tasks run.
@Suite(.enabled(if: IntegrationEnvironment.enabled, "no RabbitMQ reachable at QTASKS_URL; deploy/test.sh starts one"),
       .timeLimit(.minutes(2)))
struct WorkerLifecycleTests {
    /// SIGKILL while `sleep 3` runs: the unacknowledged delivery returns to
    /// the queue, and a new worker runs it again and answers.
    @Test func sigkillWhileATaskRunsThenRestartRunsItAgain() async throws {
        try await TestScope.run("sigkill") { scope in
            let first = try await scope.startWorker(concurrency: 1, prefetch: 1)
            let uuid = UUID().uuidString.lowercased()
            try await scope.publishTask(#"{"uuid": "\#(uuid)", "task_name": "sleep", "args": [3]}"#, correlationID: uuid)

            // Running: delivered to the only consumer, nothing ready.
            try await waitUntil("the sleep task to be delivered to the worker", timeout: 10) {
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
            let reply = try await scope.nextReply(timeout: 20, "the result of the redelivered task")
            #expect(reply.correlationID == uuid)
            reply.expectDocumented(uuid: uuid, taskName: "sleep", status: "success", returning: 3)
            await scope.stopGracefully(second)
            #expect(try await scope.admin.queueInfo(scope.queue)?.messageCount == 0)
            #expect(try await scope.admin.get(scope.deadLetterQueue) == nil)
        }
    }

    /// SIGTERM while five `sleep 2` run (concurrency 5): they finish, their
    /// results arrive, they are acknowledged, and the process exits 0.
    @Test func sigtermLetsInFlightTasksFinishAndExitsZero() async throws {
        try await TestScope.run("sigterm") { scope in
            let worker = try await scope.startWorker(concurrency: 5, prefetch: 5, shutdownGrace: 30)
            let uuids = (0..<5).map { _ in UUID().uuidString.lowercased() }
            for uuid in uuids {
                try await scope.publishTask(#"{"uuid": "\#(uuid)", "task_name": "sleep", "args": [2]}"#, correlationID: uuid)
            }
            try await waitUntil("all five tasks to be delivered", timeout: 10) {
                try await scope.admin.queueInfo(scope.queue)?.messageCount == 0
            }
            // The broker has sent them; nothing outside the worker can see
            // when it has read them off its socket and started them, so give
            // it a moment (each runs 2 s). Deliveries not started by SIGTERM
            // would be requeued, and this test would fail on their results.
            try await Task.sleep(for: .milliseconds(500))
            let signalled = ContinuousClock.now
            worker.signal(SIGTERM)

            var results: [String: ResultMessage] = [:]
            for _ in uuids {
                let reply = try await scope.nextReply(timeout: 15, "the results of the in-flight tasks")
                results[reply.correlationID ?? "?"] = reply
            }
            #expect(Set(results.keys) == Set(uuids))
            for (uuid, reply) in results {
                reply.expectDocumented(uuid: uuid, taskName: "sleep", status: "success", returning: 2)
            }
            let ended = await worker.waitForExit(timeout: 20)
            #expect(ended == .exited(0), "\(worker.stderrTail())")
            #expect(ContinuousClock.now - signalled > .milliseconds(500), "it waited for the tasks")
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
