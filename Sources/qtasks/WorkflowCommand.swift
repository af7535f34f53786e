import ArgumentParser
import CommandSupport
import Foundation
import Logging
import QTasks
import QTasksRabbitMQ

/// `qtasks workflow`: send a workflow written as JSON, or print one's tree
/// with each step's status.
struct WorkflowCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "workflow",
        abstract: "Send a workflow (chain, group, chord, map) or print a workflow's tree with each step's status.",
        discussion: """
            `qtasks workflow UUID` (or `qtasks workflow show UUID`) reads the workflow store (the \
            workers' --result-store) and prints the tree: each task with its status from its \
            record, each group with how many members ended. `qtasks workflow send FILE` sends a \
            tree written as JSON (docs/workflows.md, "On the wire"; FILE - reads standard input).
            """,
        subcommands: [WorkflowShowCommand.self, WorkflowSendCommand.self],
        defaultSubcommand: WorkflowShowCommand.self)
}

/// `qtasks workflow show UUID [--json]`.
struct WorkflowShowCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "show",
        abstract: "Print a workflow's tree with each step's status.",
        discussion: """
            Exit status: 0 the workflow succeeded; 1 it failed; 2 the store has no record of it; \
            3 it is still running; 4 the store could not be reached; 64 bad usage.
            """)

    @OptionGroup(title: "Result store")
    var store: ResultStoreOptions

    @Argument(help: "The workflow's uuid (as `qtasks workflow send` prints it).")
    var uuid: String

    @Option(help: "Show at most this many members of each group (default: 20).")
    var members: Int = 20

    @Flag(help: "Print the record and the tree (with each group's progress) as one JSON object.")
    var json = false

    func validate() throws {
        try store.validateGiven()
        guard !uuid.isEmpty else { throw ValidationError("the uuid must not be empty") }
        guard members >= 0 else { throw ValidationError("--members must be 0 or more") }
    }

    func run() async throws {
        let (lines, status): ([String], TaskStatus) = try await store.withStore { resultStore in
            guard let workflows = resultStore as? any WorkflowStore else {
                printError("qtasks: the result store \(store.redactedURL) keeps no workflows")
                throw ExitStatus.usage
            }
            guard let record = try await workflows.workflowRecord(for: uuid) else {
                printError("qtasks: the store has no workflow \(uuid) (not started by a worker with this store, or expired)")
                throw ExitStatus.notFound
            }
            let tree = try await WorkflowTreeNode.load(record.root, records: resultStore, workflows: workflows, maxMembers: members)
            if json {
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
                encoder.dateEncodingStrategy = .secondsSince1970
                var object: [String: JSONValue] = ["workflow": try JSONValue(encoding: record)]
                object["tree"] = try JSONValue(encoding: tree)
                return ([String(decoding: try encoder.encode(JSONValue.object(object)), as: UTF8.self)], record.status)
            }
            var lines = [
                "workflow \(record.id)  \(record.status)  policy \(record.policy.rawValue)",
            ]
            if let result = record.result { lines.append("result: \(result)") }
            if let error = record.error { lines.append((record.status == .success ? "note: " : "error: ") + error) }
            lines += tree.lines(indent: "  ")
            return (lines, record.status)
        }
        print(TerminalText.safe(lines.joined(separator: "\n")))
        fflush(nil)
        switch status {
        case .success: return
        case .error, .cancel: throw ExitStatus.taskFailed
        default: throw ExitStatus.timeout
        }
    }
}

/// `qtasks workflow send FILE [--policy P] [--queue Q] [--wait S]`.
struct WorkflowSendCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "send",
        abstract: "Send a workflow written as JSON and print its result.",
        discussion: """
            FILE holds one step: {"task": "add", "args": [2, 3]}, {"chain": [step, …]}, \
            {"group": [step, …], "window": 50} (docs/workflows.md); uuids are drawn when sending. \
            Each step after the first gets the previous step's result as its first argument. \
            Prints the workflow's result message (JSON) once it ended, or only its uuid with \
            --wait 0. Exit status as `qtasks send`.
            """)

    @OptionGroup var broker: BrokerOptions

    @Argument(help: "The JSON file of the workflow; - reads standard input.")
    var file: String

    @Option(help: "What a failed group member does: fail_fast (default), all_settled, continue.")
    var policy: String = WorkflowPolicy.failFast.rawValue

    @Option(help: "The queue of the starting message, and of steps without a queue of their own (default: the first task's, else default).")
    var queue: String?

    @Option(
        help: "Seconds to wait for the workflow's result; 0 prints the uuid and does not wait (default: 60).",
        transform: SecondsOption.parser("--wait must be a number of seconds from 0 to \(Int(SendCommand.longestWait)) (a week)") {
            (0...SendCommand.longestWait).contains($0)
        })
    var wait: Duration = .seconds(60)

    func validate() throws {
        guard WorkflowPolicy(rawValue: policy) != nil else {
            throw ValidationError("--policy must be one of \(WorkflowPolicy.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        if let queue { try QueueNaming.validateTaskQueue(queue, what: "--queue") }
    }

    func run() async throws {
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = .warning
            return handler
        }
        let step: WorkflowStep
        do {
            let data = file == "-" ? FileHandle.standardInput.readDataToEndOfFile() : try Data(contentsOf: URL(fileURLWithPath: file))
            step = try JSONDecoder().decode(WorkflowStep.self, from: data)
        } catch let error as CocoaError where error.code == .fileReadNoSuchFile || error.code == .fileNoSuchFile {
            printError("qtasks: no such file: \(file)")
            throw ExitStatus.usage
        } catch let error as DecodingError {
            printError("qtasks: cannot read the workflow in \(file): \(Self.describe(error))")
            throw ExitStatus.usage
        } catch {
            printError("qtasks: cannot read the workflow in \(file): \(error)")
            throw ExitStatus.usage
        }
        for task in step.tasks {
            guard let queue = task.queue else { continue }
            do {
                try QueueNaming.validateTaskQueue(queue, what: "the queue of step \(task.taskName)")
            } catch {
                printError("qtasks: \(error)")
                throw ExitStatus.usage
            }
        }
        let brokerConnection: RabbitMQBroker
        do {
            brokerConnection = RabbitMQBroker(configuration: try RabbitMQBrokerConfiguration(url: broker.resolvedURL))
        } catch {
            printError("qtasks: \(error)")
            throw ExitStatus.usage
        }
        let client = TaskClient(broker: brokerConnection)
        let policy = WorkflowPolicy(rawValue: policy)!
        func closeAll() async {
            await client.close()
            await brokerConnection.close()
        }
        let handle: TaskHandle<JSONValue>
        do {
            if wait == .zero {
                let sent = try await client.sendWithoutReply(Workflow<JSONValue>(step: step), policy: policy, queue: queue)
                print(sent.uuid)
                fflush(nil)
                await closeAll()
                return
            }
            handle = try await client.send(workflow: step, policy: policy, queue: queue)
        } catch {
            printError("qtasks: cannot send the workflow: \(error)")
            await closeAll()
            throw ExitStatus.brokerFailure
        }
        printError("qtasks: workflow \(handle.uuid) sent")
        let result: TaskResult
        do {
            result = try await handle.result(timeout: wait)
        } catch let error as TaskClientError where error.code == .timeout {
            printError("qtasks: workflow \(handle.uuid) has not ended within \(Seconds.double(wait)) s (`qtasks workflow \(handle.uuid)` shows where it is)")
            await closeAll()
            throw ExitStatus.timeout
        } catch {
            printError("qtasks: waiting for workflow \(handle.uuid) failed: \(error)")
            await closeAll()
            throw ExitStatus.brokerFailure
        }
        print(String(decoding: result.jsonBytes(), as: UTF8.self))
        fflush(nil)
        await closeAll()
        if let failure = ExitStatus.forTask(result.status) {
            printError("qtasks: workflow \(handle.uuid) ended with status \(result.status): \(TerminalText.safe(result.traceback ?? ""))")
            throw failure
        }
    }
}

extension WorkflowSendCommand {
    /// A decoding error as the field it is about and what is wrong with
    /// it (`at window: a group's window must be a whole number, not 2.5`),
    /// without Foundation's "Data was corrupted" wording.
    static func describe(_ error: DecodingError) -> String {
        func path(_ codingPath: [any CodingKey]) -> String {
            var text = ""
            for key in codingPath {
                if let index = key.intValue { text += "[\(index)]" } else { text += (text.isEmpty ? "" : ".") + key.stringValue }
            }
            return text.isEmpty ? "the top level" : text
        }
        switch error {
        case .dataCorrupted(let context):
            return context.codingPath.isEmpty ? context.debugDescription : "at \(path(context.codingPath)): \(context.debugDescription)"
        case .typeMismatch(_, let context), .valueNotFound(_, let context):
            return "at \(path(context.codingPath)): \(context.debugDescription)"
        case .keyNotFound(let key, let context):
            return "at \(path(context.codingPath)): missing \"\(key.stringValue)\""
        @unknown default:
            return "\(error)"
        }
    }
}
