import AMQP
import Foundation
import QTasks
import Testing

/// Workflows under faults, with `qtasks-example` worker processes sharing
/// a Redis workflow store: a chord whose header is interrupted by SIGKILLs
/// still gives its callback every result, once.
@Suite(.enabled(if: IntegrationEnvironment.enabled, "no RabbitMQ reachable at QTASKS_URL; deploy/test.sh starts one"),
       .timeLimit(.minutes(5)))
struct WorkflowFaultTests {
    static let redisURL = ProcessInfo.processInfo.environment["QTASKS_REDIS_URL"] ?? "redis://127.0.0.1:6379/0"

    /// A run log line per handler run (`RunLogMiddleware`): task name, uuid.
    struct RunLog {
        let path: String
        struct Run: Hashable {
            var task: String
            var uuid: String
        }

        func read() -> [Run] {
            let bytes = (try? Data(contentsOf: URL(fileURLWithPath: path))) ?? Data()
            var runs: [Run] = []
            for line in String(decoding: bytes, as: UTF8.self).split(whereSeparator: \.isNewline) {
                // Runs as they start (`… start`; `… end` lines are their ends).
                let parts = line.split(whereSeparator: { $0 == " " })
                if parts.count >= 2, parts.last != "end" { runs.append(Run(task: String(parts[0]), uuid: String(parts[1]))) }
            }
            return runs
        }
    }

    /// The chord of 1,000 members (each `sleep(0.04)` then `add(_, i)`)
    /// with callback `echo`, on two workers; one of them is SIGKILLed
    /// twice while the header runs (and started again). The callback runs
    /// exactly once, with the 1,000 results in member order.
    @Test func aChordOfAThousandSurvivesTwoSIGKILLsWithExactlyOneCallback() async throws {
        try await TestScope.run("workflow-sigkill") { scope in
            let log = RunLog(path: NSTemporaryDirectory() + "qtasks-runlog-\(UUID().uuidString).txt")
            defer { if ProcessInfo.processInfo.environment["KEEP_RUNLOG"] == nil { try? FileManager.default.removeItem(atPath: log.path) } }
            let arguments = [
                "--url", IntegrationEnvironment.url, "--queue", scope.queue, "--concurrency", "4", "--prefetch", "8",
                "--result-store", Self.redisURL, "--log-level", "info",
            ]
            func startWorker() async throws -> ChildProcess {
                let worker = try scope.spawn(IntegrationEnvironment.workerExecutable, arguments, environment: ["QTASKS_EXAMPLE_RUN_LOG": log.path])
                try await worker.waitUntilConsuming()
                return worker
            }
            var workers = [try await startWorker(), try await startWorker()]

            let members: [WorkflowStep] = (0..<1000).map { index in
                .chain([
                    .task(WorkflowTask(taskName: "sleep", args: [0.04])),
                    .task(WorkflowTask(taskName: "add", args: [.int(Int64(index))])),
                ])
            }
            let root = WorkflowStep.chain([.group(id: UUID().uuidString.lowercased(), members: members, window: nil), .task(WorkflowTask(taskName: "echo"))])
            var start = TaskMessage(taskName: WorkflowContext.startTaskName)
            start.workflow = WorkflowContext(id: start.uuid, policy: .failFast, replyTo: scope.replyQueue, start: root)
            try await scope.publishTask(start.jsonBytes(), correlationID: "start")

            // Two kills of the same worker while the header runs.
            var atKills: [Int] = []
            for progress in [300, 1100] {
                try await waitUntil("\(progress) member runs", timeout: 120) { log.read().count >= progress }
                atKills.append(log.read().count)
                #expect(!log.read().contains { $0.task == "echo" }, "the kill lands in the header, before the callback")
                workers[0].signal(SIGKILL)
                _ = await workers[0].waitForExit(timeout: 10)
                workers[0] = try await startWorker()
            }

            var result: ResultMessage?
            try await waitUntil("the workflow's result", timeout: 180) {
                while let delivery = try await scope.admin.get(scope.replyQueue) {
                    let message = try ResultMessage(delivery)
                    if message.correlationID == start.uuid { result = message }
                }
                return result != nil
            }
            // Late duplicates of the callback's message would run now.
            for worker in workers { await scope.stopGracefully(worker) }

            let message = try #require(result)
            #expect(message.object["status"] == "success", "\(message.text)")
            guard case .object(let returning)? = message.object["returning"], case .array(let args)? = returning["args"],
                  case .array(let values)? = args.first
            else {
                Issue.record("the callback's result is not echo's {args: [[...]]}: \(message.text)")
                return
            }
            #expect(values.count == 1000)
            #expect(values == (0..<1000).map { .double(Double($0) + 0.04) })

            let runs = log.read()
            let memberRuns = runs.filter { $0.task == "sleep" || $0.task == "add" }
            let uniqueMembers = Set(memberRuns.map(\.uuid)).count
            let callbackRuns = runs.filter { $0.task == "echo" }.count
            print("fault-suite run log: \(runs.count) lines")
            print("fault-suite workflow chord of 1,000 (2,000 member tasks), one of two workers SIGKILLed twice in the header (at \(atKills.map(String.init).joined(separator: " and ")) runs): member runs \(memberRuns.count), unique \(uniqueMembers), duplicate executions \(memberRuns.count - uniqueMembers), callback runs \(callbackRuns), callback results 1")
            #expect(uniqueMembers == 2000)
            #expect(callbackRuns == 1)
            #expect(try await scope.admin.get(scope.deadLetterQueue) == nil)
        }
    }
}
