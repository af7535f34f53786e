import ArgumentParser
import Foundation
import Logging
import QTasks
import QTasksRabbitMQ

/// `qtasks send TASK [ARG...]`: publishes a task and prints its result.
struct SendCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "send",
        abstract: "Send a task and print its result as JSON.",
        discussion: """
            Each ARG is read as JSON when it parses as JSON (2, 2.5, true, null, "text", [1,2], \
            {"a":1}), and as a plain string otherwise: `qtasks send add 2 3` sends args [2, 3], \
            `qtasks send word_count "hello world"` sends args ["hello world"]. To send the string "2", \
            quote it as JSON: '"2"'. Arguments that start with a dash follow `--`: \
            `qtasks send add -- -1 2`.

            The result message is printed on standard output as received (the wire format in \
            docs/wire-format.md). With --wait 0 the task is sent and its uuid printed, without \
            waiting for a result.
            """)

    @OptionGroup var broker: BrokerOptions

    @Argument(help: "The task name, as registered on the worker.")
    var task: String

    @Argument(help: "Positional arguments (JSON, or plain strings); put -- before any that starts with '-'.")
    var args: [String] = []

    @Option(help: "Keyword arguments as one JSON object, e.g. '{\"a\": 2, \"b\": 3}'.")
    var kwargs: String?

    @Option(help: "The queue to send to.")
    var queue: String = "default"

    @Option(help: "The QTasks priority (lower runs first): written in the task body, and on a priority queue (--max-priority) mapped to the AMQP priority max(0, MAX - PRIORITY).")
    var priority: Int?

    @Option(help: "The queue is a priority queue with this x-max-priority (1...255), as the worker declares it (its --max-priority).")
    var maxPriority: Int?

    @Option(help: "Seconds to wait for the result; 0 sends without waiting.")
    var wait: Double = 30

    static let longestWait = 604_800.0
    static let longestQueueName = 255 - ".retry.2592000000".utf8.count

    func validate() throws {
        // (0...limit).contains is false for NaN and infinity too.
        guard (0...Self.longestWait).contains(wait) else {
            throw ValidationError("--wait must be a number of seconds from 0 to \(Int(Self.longestWait)) (a week)")
        }
        guard !task.isEmpty else { throw ValidationError("the task name must not be empty") }
        guard !queue.isEmpty else { throw ValidationError("--queue must not be empty") }
        // The worker declares `<queue>.dlq` and `<queue>.retry.<ms>` next to
        // it; AMQP names are at most 255 bytes.
        guard queue.utf8.count <= Self.longestQueueName else {
            throw ValidationError("--queue is \(queue.utf8.count) bytes; at most \(Self.longestQueueName), so that its dead-letter and retry queues fit AMQP's 255")
        }
        if let maxPriority, !(1...255).contains(maxPriority) { throw ValidationError("--max-priority must be 1...255") }
        _ = try parsedKwargs()
    }

    private func parsedKwargs() throws -> [String: JSONValue] {
        guard let kwargs else { return [:] }
        guard case .object(let object)? = try? JSONDecoder().decode(JSONValue.self, from: Data(kwargs.utf8)) else {
            throw ValidationError("--kwargs must be a JSON object, e.g. '{\"a\": 2}', not: \(kwargs)")
        }
        return object
    }

    /// An argument as JSON when it parses, else as a string.
    static func argumentValue(_ text: String) -> JSONValue {
        if let value = try? JSONDecoder().decode(JSONValue.self, from: Data(text.utf8)) { return value }
        return .string(text)
    }

    func run() async throws {
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = .warning
            return handler
        }
        let brokerConnection: RabbitMQBroker
        do {
            var configuration = try RabbitMQBrokerConfiguration(url: broker.resolvedURL)
            configuration.maxPriority = maxPriority
            brokerConnection = RabbitMQBroker(configuration: configuration)
        } catch {
            printError("qtasks: \(error)")
            throw ExitStatus.usage
        }
        let client = TaskClient(broker: brokerConnection)
        let handle: TaskHandle
        do {
            handle = try await client.send(
                task, args: args.map(Self.argumentValue), kwargs: try parsedKwargs(), queue: queue,
                priority: priority)
        } catch {
            printError("qtasks: cannot send \(task) to queue \(queue): \(error)")
            await client.close()
            await brokerConnection.close()
            throw ExitStatus.brokerFailure
        }
        guard wait > 0 else {
            print(handle.uuid)
            await client.close()
            await brokerConnection.close()
            return
        }
        let result: TaskResult
        do {
            result = try await handle.result(timeout: .milliseconds(Int64(wait * 1000)))
        } catch let error as TaskClientError where error.code == .timeout {
            printError("qtasks: no result for \(task) (uuid \(handle.uuid)) within \(wait) s; is a worker consuming '\(queue)'?")
            await client.close()
            await brokerConnection.close()
            throw ExitStatus.timeout
        } catch {
            printError("qtasks: waiting for the result of \(task) failed: \(error)")
            await client.close()
            await brokerConnection.close()
            throw ExitStatus.brokerFailure
        }
        print(String(decoding: result.jsonBytes(), as: UTF8.self))
        fflush(nil)
        await client.close()
        await brokerConnection.close()
        if result.status != .success {
            printError("qtasks: \(task) ended with status \(result.status): \(result.traceback ?? "")")
            throw ExitStatus.taskFailed
        }
    }
}

func printError(_ text: String) {
    FileHandle.standardError.write(Data((text + "\n").utf8))
}
