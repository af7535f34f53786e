import ArgumentParser
import Dispatch
import Foundation
import Logging
import QTasks
import QTasksRabbitMQ
import Synchronization

/// `qtasks events [--json] [--pattern P] [--count N]`: tails the events
/// exchange.
struct EventsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "events",
        abstract: "Print task events and worker heartbeats live from the qtasks.events exchange.",
        discussion: """
            Workers run with --publish-events publish each task's events (received, started, \
            succeeded, failed, retried, dead_lettered, cancelled, requeued) and their heartbeats to \
            the qtasks.events topic exchange. This binds an exclusive, auto-delete queue of its own \
            to it with --pattern (a topic pattern over the routing keys task.<event>.<task name>, \
            worker.heartbeat and worker.offline; default # for everything: task.failed.# for \
            failures, task.*.add for one task, worker.* for heartbeats) and prints what arrives, \
            one line per event, until --count events arrived or SIGINT/SIGTERM. Events published \
            before it started are not shown (the exchange keeps nothing).

            A line is: time (UTC), routing key, uuid, attempt, worker, and the result, error or \
            delay; a heartbeat's line has the worker's counts. --json prints each message's body \
            instead, one JSON object per line (docs/results.md). Once bound it says so on standard \
            error ("listening ...").

            Exit status: 0 after --count events or on SIGINT/SIGTERM; 4 the broker could not be \
            reached, refused, or the connection was lost; 64 bad usage.
            """)

    @OptionGroup var broker: BrokerOptions

    @Option(help: "Topic pattern over the routing keys (default: # for everything).")
    var pattern: String = "#"

    @Option(help: "Exit after this many events.")
    var count: Int?

    @Flag(help: "Print each event's JSON body, one object per line.")
    var json = false

    func validate() throws {
        guard !pattern.isEmpty, pattern.utf8.count <= 255 else { throw ValidationError("--pattern must be 1 to 255 bytes") }
        if let count, count < 1 { throw ValidationError("--count must be at least 1") }
    }

    func run() async throws {
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = .warning
            return handler
        }
        let configuration: RabbitMQBrokerConfiguration
        do {
            configuration = try RabbitMQBrokerConfiguration(url: broker.resolvedURL)
        } catch {
            printError("qtasks: \(error)")
            throw ExitStatus.usage
        }
        // SIGINT and SIGTERM stop the tail: the iteration ends, the
        // connection closes (and the queue with it), the command exits 0.
        // Handled from before the tail starts, so that none is missed.
        let stop = StopSignal()
        let signals = [SIGINT, SIGTERM].map { number in
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler { stop.fire() }
            source.resume()
            return source
        }
        defer { signals.forEach { $0.cancel() } }
        let tail = Task { [pattern, count, json] in
            try await EventsExchange.tail(configuration: configuration, pattern: pattern) { messages in
                printError("qtasks: listening to \(EventsExchange.name) with pattern '\(pattern)' (Ctrl-C stops)")
                var seen = 0
                for try await message in messages {
                    if json {
                        print(TerminalText.safeLine(String(decoding: message.body, as: UTF8.self)))
                    } else {
                        print(TerminalText.safe(EventText.line(message)))
                    }
                    fflush(nil)
                    seen += 1
                    if let count, seen >= count { return }
                }
            }
        }
        stop.cancels(tail)
        do {
            try await tail.value
        } catch is CancellationError {
            return
        } catch {
            if stop.isFired { return }
            printError("qtasks: events: \(error)")
            throw ExitStatus.brokerFailure
        }
    }
}

/// A signal that cancels a task, also when it fired before the task was
/// given.
private final class StopSignal: Sendable {
    private struct State {
        var fired = false
        var task: Task<Void, any Error>?
    }
    private let state = Mutex(State())

    var isFired: Bool { state.withLock { $0.fired } }

    func fire() {
        state.withLock { state in
            state.fired = true
            return state.task
        }?.cancel()
    }

    func cancels(_ task: Task<Void, any Error>) {
        let fired = state.withLock { state in
            state.task = task
            return state.fired
        }
        if fired { task.cancel() }
    }
}
