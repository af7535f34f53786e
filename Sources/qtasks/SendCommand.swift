import ArgumentParser
import CommandSupport
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
            docs/wire-format.md). With --wait 0 the task is sent without a reply_to (the worker \
            publishes no result for it) and its uuid printed.

            A send whose connection to the broker is lost is retried (3 times, 0.2 s, 0.4 s, 0.8 s \
            apart), through the next node when --url lists a cluster's nodes, with the same uuid: \
            should the lost try have reached the broker, the task runs twice (at-least-once).

            With --count N the task is sent N times (each copy with its own uuid), in batches of \
            --batch-size (10000) pipelined within the publisher-confirm window (the Swift client's batch send), and, instead of \
            results, a throughput summary is printed: `sent N tasks in S s (R tasks/s)`, and with \
            --wait > 0 `results: N received, N succeeded, N failed, N timed out in S s (R results/s)` \
            (S counted from the first send), --wait then being the time allowed for all results \
            after the last send, and `results lost with a reply queue: N`: results that cannot \
            arrive any more because the connection holding the client's reply queue was lost \
            (the tasks were sent and may well have run). When a send fails for good (after its \
            retries), the tasks sent before it are still waited for and counted. Progress goes \
            to standard error: a progress bar on a terminal, a line every second otherwise. Exit \
            status with --count: 1 if any result was an error or a cancel, else 4 if a send failed \
            (after its retries) or results were lost with a reply queue, else 3 if any result did \
            not arrive within --wait.

            With --result-store (or QTASKS_RESULT_STORE) each task sent is also recorded in that \
            store (status new; its arguments are recorded by the worker that takes it), so that \
            `qtasks result UUID` finds it, also after this command exited (--wait 0). A store that \
            cannot be opened or written is a warning on standard error: the task is sent all the same.
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

    @OptionGroup(title: "How the queue is declared if it does not exist yet (as the worker declares it)")
    var queueTypes: QueueTypeOptions

    @Option(
        help: "Seconds to wait for the result; 0 sends without a reply_to and does not wait (default: 30).",
        transform: SecondsOption.parser("--wait must be a number of seconds from 0 to \(Int(Self.longestWait)) (a week)") {
            (0...Self.longestWait).contains($0)
        })
    var wait: Duration = .seconds(30)

    @Option(help: "Send the task this many times (each with its own uuid) and print a throughput summary.")
    var count: Int?

    @OptionGroup(title: "Result store (a record of each task sent, for `qtasks result`)")
    var results: ResultStoreOptions

    @Option(
        name: .customLong("batch-size"),
        help: "With --count: tasks handed to the broker at once, pipelined within the publisher-confirm window (1 sends one at a time, each confirmed before the next).")
    var batchSize: Int = 10_000

    static let longestWait = 604_800.0

    func validate() throws {
        guard !task.isEmpty else { throw ValidationError("the task name must not be empty") }
        // The worker declares `<queue>.dlq` and `<queue>.retry.<ms>` next to
        // it; AMQP names are at most 255 bytes.
        do {
            try QueueNaming.validateTaskQueue(queue, what: "--queue")
        } catch let error as QueueNameError {
            throw ValidationError(error.message)
        }
        if let count, !(1...10_000_000).contains(count) { throw ValidationError("--count must be 1...10000000") }
        guard (1...1_000_000).contains(batchSize) else { throw ValidationError("--batch-size must be 1...1000000") }
        if let maxPriority, !(1...255).contains(maxPriority) { throw ValidationError("--max-priority must be 1...255") }
        try queueTypes.validate(maxPriority: maxPriority)
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
            queueTypes.apply(to: &configuration)
            brokerConnection = RabbitMQBroker(configuration: configuration)
        } catch {
            printError("qtasks: \(error)")
            throw ExitStatus.usage
        }
        let recorder = await openSentRecorder()
        let client = TaskClient(broker: brokerConnection, batchWindow: batchSize)
        func closeAll() async {
            await client.close()
            await brokerConnection.close()
            await recorder?.close()
        }
        if let count {
            let outcome = await sendMany(count, client: client, recorder: recorder)
            await closeAll()
            if let outcome { throw outcome }
            return
        }
        let handle: TaskHandle<JSONValue>
        let createdAt = Date()
        do {
            guard wait > .zero else {
                // No reply_to: nobody will read the result once we exit.
                let sent = try await client.sendWithoutReply(
                    task, args: args.map(Self.argumentValue), kwargs: try parsedKwargs(), queue: queue,
                    priority: priority)
                print(sent.uuid)
                fflush(nil)
                await recorder?.record([sent.uuid], createdAt: createdAt)
                await closeAll()
                return
            }
            handle = try await client.send(
                task, args: args.map(Self.argumentValue), kwargs: try parsedKwargs(), queue: queue,
                priority: priority)
        } catch {
            printError("qtasks: cannot send \(task) to queue \(queue): \(error)")
            await closeAll()
            throw ExitStatus.brokerFailure
        }
        await recorder?.record([handle.uuid], createdAt: createdAt)
        let result: TaskResult
        do {
            result = try await handle.result(timeout: wait)
        } catch let error as TaskClientError where error.code == .timeout {
            printError("qtasks: no result for \(task) (uuid \(handle.uuid)) within \(Seconds.double(wait)) s; is a worker consuming '\(queue)'?")
            await closeAll()
            throw ExitStatus.timeout
        } catch {
            printError("qtasks: waiting for the result of \(task) (uuid \(handle.uuid)) failed: \(error)")
            await closeAll()
            throw ExitStatus.brokerFailure
        }
        print(String(decoding: result.jsonBytes(), as: UTF8.self))
        fflush(nil)
        await closeAll()
        if let failure = ExitStatus.forTask(result.status) {
            printError(
                "qtasks: \(TerminalText.safeLine(task)) ended with status \(TerminalText.safeLine(result.status.rawValue)): \(TerminalText.safe(result.traceback ?? ""))")
            throw failure
        }
    }
}

extension SendCommand {
    /// `--count N`: sends N copies, then waits for their results (--wait >
    /// 0); prints the summary. Returns the exit status when not 0.
    func sendMany(_ count: Int, client: TaskClient, recorder: SentRecorder?) async -> ExitCode? {
        let arguments = args.map(Self.argumentValue)
        let keywords = (try? parsedKwargs()) ?? [:]
        var handles: [TaskHandle<JSONValue>] = []
        handles.reserveCapacity(wait > .zero ? count : 0)
        let progress = ProgressReporter(label: "sent", total: count)
        let start = ContinuousClock.now
        var sendFailed = false
        // Batches, pipelined within the publisher-confirm window (the
        // client's batch send); in chunks so that the progress moves.
        let request = TaskRequest(task, args: arguments, kwargs: keywords, queue: queue, priority: priority)
        let chunk = batchSize
        var sentCount = 0
        while sentCount < count {
            let requests = Array(repeating: request, count: min(chunk, count - sentCount))
            let createdAt = Date()
            do {
                if wait > .zero {
                    let sent = try await client.send(batch: requests)
                    handles.append(contentsOf: sent)
                    await recorder?.record(sent.map(\.uuid), createdAt: createdAt)
                } else {
                    let sent = try await client.sendWithoutReply(batch: requests)
                    await recorder?.record(sent.map(\.uuid), createdAt: createdAt)
                }
                sentCount += requests.count
            } catch {
                var cause: any Error = error
                if let partial = error as? BatchSendError<JSONValue> {
                    handles.append(contentsOf: partial.handles)
                    sentCount += partial.sent.count
                    cause = partial.error
                    await recorder?.record(partial.sent.map(\.uuid), createdAt: createdAt)
                } else if let partial = error as? BatchSendError<NoResult> {
                    sentCount += partial.sent.count
                    cause = partial.error
                    await recorder?.record(partial.sent.map(\.uuid), createdAt: createdAt)
                }
                progress.finish(sentCount)
                printError("qtasks: cannot send \(task) to queue \(queue) (after \(sentCount) of \(count) copies): \(cause)")
                print("sent \(sentCount) of \(count) tasks before the failure")
                fflush(nil)
                sendFailed = true
                break
            }
            progress.update(sentCount)
        }
        if !sendFailed {
            progress.finish(count)
            let sendSeconds = Self.seconds(since: start)
            print("sent \(count) tasks in \(Self.format(sendSeconds)) s (\(Self.format(Double(count) / max(sendSeconds, 1e-9))) tasks/s)")
            fflush(nil)
        }
        // After a failed send, the tasks sent before it are still waited
        // for: they run, and their results say how they went.
        guard wait > .zero, !handles.isEmpty else { return sendFailed ? ExitStatus.brokerFailure : nil }
        let sent = handles.count

        let deadline = ContinuousClock.now + wait
        let results = ProgressReporter(label: "results", total: sent)
        var succeeded = 0, failed = 0, timedOut = 0, lost = 0
        var firstFailure: TaskResult?
        // Results arrive in any order; each handle keeps its own, so waiting
        // in send order still takes no longer than the slowest one.
        for (index, handle) in handles.enumerated() {
            let remaining = max(deadline - ContinuousClock.now, .zero)
            do {
                let result = try await handle.result(timeout: remaining)
                if result.status == .success {
                    succeeded += 1
                } else {
                    failed += 1
                    if firstFailure == nil { firstFailure = result }
                }
            } catch let error as TaskClientError where error.code == .timeout {
                timedOut += 1
            } catch {
                // `.replyQueueLost`: the task was sent (and may have run),
                // its result cannot arrive; not a timeout.
                lost += 1
            }
            results.update(index + 1)
        }
        results.finish(sent)
        let resultSeconds = Self.seconds(since: start)
        let received = succeeded + failed
        print(
            "results: \(received) received, \(succeeded) succeeded, \(failed) failed, \(timedOut) timed out in "
                + "\(Self.format(resultSeconds)) s (\(Self.format(Double(received) / max(resultSeconds, 1e-9))) results/s)")
        print("results lost with a reply queue: \(lost)")
        fflush(nil)
        if let firstFailure {
            printError("qtasks: \(failed) of \(sent) ended with an error or cancel; first: \(firstFailure.status): \(firstFailure.traceback ?? "")")
            return ExitStatus.taskFailed
        }
        if lost > 0 {
            printError("qtasks: \(lost) of \(sent) results cannot arrive any more: the connection holding the reply queue was lost (the tasks were sent; they may have run)")
        }
        if lost > 0 || sendFailed { return ExitStatus.brokerFailure }
        if timedOut > 0 {
            printError("qtasks: \(timedOut) of \(sent) results did not arrive within \(Seconds.double(wait)) s; is a worker consuming '\(queue)'?")
            return ExitStatus.timeout
        }
        return nil
    }

    static func seconds(since start: ContinuousClock.Instant) -> Double {
        Seconds.double(ContinuousClock.now - start)
    }

    static func format(_ value: Double) -> String { String(format: "%.2f", value) }
}

/// Progress on standard error: a redrawn bar on a terminal, a plain line
/// at most once a second otherwise.
final class ProgressReporter {
    let label: String
    let total: Int
    let isTerminal = isatty(STDERR_FILENO) != 0
    private var lastDraw = ContinuousClock.now
    private let start = ContinuousClock.now

    init(label: String, total: Int) {
        self.label = label
        self.total = total
    }

    func update(_ done: Int) {
        let now = ContinuousClock.now
        let interval: Duration = isTerminal ? .milliseconds(100) : .seconds(1)
        guard now - lastDraw >= interval else { return }
        lastDraw = now
        draw(done, final: false)
    }

    func finish(_ done: Int) {
        // A plain line only when a run lasted long enough to have printed some.
        if isTerminal || ContinuousClock.now - start >= .seconds(1) { draw(done, final: true) }
    }

    private func draw(_ done: Int, final: Bool) {
        let fraction = total > 0 ? Double(done) / Double(total) : 1
        if isTerminal {
            let width = 30
            let filled = min(width, Int(fraction * Double(width)))
            let bar = String(repeating: "#", count: filled) + String(repeating: "-", count: width - filled)
            let text = "\r\(label) [\(bar)] \(done)/\(total) \(Int(fraction * 100))%" + (final ? "\n" : "")
            FileHandle.standardError.write(Data(text.utf8))
        } else {
            printError("\(label): \(done)/\(total) (\(Int(fraction * 100))%)")
        }
    }
}

func printError(_ text: String) {
    FileHandle.standardError.write(Data((text + "\n").utf8))
}
