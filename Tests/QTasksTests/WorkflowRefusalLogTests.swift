import Foundation
import Logging
import QTasks
import QTasksTesting
import Synchronization
import Testing

/// A workflow the worker refuses (a group without a workflow store) is
/// dead-lettered, and its log line says it failed: never `task succeeded`
/// before the dead letter.
@Suite struct WorkflowRefusalLogTests {
    final class Lines: Sendable {
        private let lines = Mutex<[String]>([])
        func append(_ line: String) { lines.withLock { $0.append(line) } }
        var all: [String] { lines.withLock { $0 } }
    }

    struct Capturing: LogHandler {
        let lines: Lines
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .info
        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }
        func log(event: LogEvent) {
            let fields = (event.metadata ?? [:]).sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
            lines.append("\(event.level) \(event.message) \(fields)")
        }
    }

    static let add = TaskDefinition("refusal.add", arguments: Int.self, Int.self, returning: Int.self)

    @Test func aGroupWithoutAStoreIsLoggedAsRefusedAndFailedNotSucceeded() async throws {
        let lines = Lines()
        let app = TaskApp()
        try app.register(Self.add) { a, b in a + b }
        var configuration = quietConfiguration()
        configuration.logger = Logger(label: "refusal") { _ in Capturing(lines: lines) }
        let broker = MemoryBroker()
        try await TestWorker.run(app, configuration: configuration, broker: broker) { client, broker in
            let handle = try await client.send(Workflow.group([try Workflow.task(Self.add, 1, 1)]))
            await #expect(throws: TaskFailedError.self) { _ = try await handle.value(timeout: .seconds(30)) }
            #expect(await eventually { broker.readyCount(in: "default.dlq") == 1 })
            #expect(await eventually { lines.all.contains { $0.contains("task failed, dead-lettered") } })
        }
        let all = lines.all
        #expect(all.contains { $0.contains("workflow refused") })
        #expect(!all.contains { $0.contains("task succeeded") }, "\(all)")
        let failed = try #require(all.first { $0.contains("task failed, dead-lettered") })
        #expect(failed.hasPrefix("error "))
        #expect(failed.contains("status=error"))
        #expect(failed.contains("WorkflowError: workflow"), "\(failed)")
        #expect(failed.contains("no workflow store"), "\(failed)")
        let deadLetter = try #require(broker.messages(in: "default.dlq").first)
        #expect(deadLetter.properties.headers[MessageHeaders.errorType] == .string("WorkflowError"))
    }
}

/// Integer fields of a workflow written as JSON (`qtasks workflow send`):
/// anything but a whole number is refused naming the field, never as "not
/// valid JSON".
@Suite struct WorkflowStepIntegerFieldTests {
    func decodingError(_ json: String) -> String? {
        do {
            _ = try JSONDecoder().decode(WorkflowStep.self, from: Data(json.utf8))
            return nil
        } catch let DecodingError.dataCorrupted(context) {
            return context.codingPath.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }.joined(separator: "/") + ": " + context.debugDescription
        } catch {
            return "\(error)"
        }
    }

    @Test func windowAndPriorityMustBeWholeNumbers() throws {
        #expect(decodingError(#"{"group": [{"task": "a"}], "window": 2.5}"#) == "window: a group's window must be a whole number, not 2.5")
        #expect(decodingError(#"{"group": [{"task": "a"}], "window": "3"}"#) == #"window: a group's window must be a whole number, not "3""#)
        #expect(decodingError(#"{"group": [{"task": "a"}], "window": true}"#) == "window: a group's window must be a whole number, not true")
        #expect(decodingError(#"{"group": [{"task": "a"}], "window": 0}"#) == "window: a group's window must be a whole number of at least 1, not 0")
        #expect(decodingError(#"{"chain": [{"task": "a", "priority": 1.5}]}"#) == "chain/[0]/priority: a task's priority must be a whole number, not 1.5")
        // Whole numbers, written either way, and null (absent) are fine.
        let step = try JSONDecoder().decode(WorkflowStep.self, from: Data(#"{"group": [{"task": "a", "priority": 3}], "window": 2.0}"#.utf8))
        guard case .group(_, let members, let window) = step, case .task(let task)? = members.first else {
            Issue.record("not a group of one task: \(step)")
            return
        }
        #expect(window == 2)
        #expect(task.priority == 3)
        #expect(decodingError(#"{"group": [{"task": "a"}], "window": null}"#) == nil)
    }

    /// A step with two kinds used to keep one and drop the other in
    /// silence (break-it run: a chain beside a task ran the task without
    /// arguments; a group beside a chain never ran).
    @Test func aStepHasOneKind() {
        #expect(decodingError(#"{"chain": [{"task": "add", "args": [1, 2]}], "task": "add"}"#)
            == #": a workflow step has one of "task", "chain" or "group", not "task" and "chain""#)
        #expect(decodingError(#"{"group": [{"task": "a"}], "chain": [{"task": "b"}]}"#)
            == #": a workflow step has one of "task", "chain" or "group", not "chain" and "group""#)
        #expect(decodingError(#"{"chain": [{"task": "a", "group": []}]}"#)
            == #"chain/[0]: a workflow step has one of "task", "chain" or "group", not "task" and "group""#)
    }
}
