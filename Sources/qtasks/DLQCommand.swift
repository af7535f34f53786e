import ArgumentParser
import Foundation
import Logging
import QTasks
import QTasksRabbitMQ

/// `qtasks dlq list|show|replay|purge QUEUE`: the dead-letter queue of a
/// task queue.
struct DLQCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dlq",
        abstract: "Inspect, replay or purge the dead-letter queue of a task queue.",
        discussion: """
            QUEUE is the task queue (its dead-letter queue is QUEUE.dlq) or the .dlq name itself. list \
            and show leave the messages where they are (fetched unacknowledged, then returned); replay \
            moves them back to their origin queue, each confirmed by the broker before it leaves the \
            dead-letter queue, with its attempt count reset; purge deletes them. A dead-letter queue \
            that does not exist (no worker declared QUEUE on this vhost) is said so, with exit status 4 \
            (the broker refused the request: 404).
            """,
        subcommands: [List.self, Show.self, Replay.self, Purge.self])

    /// Shared by the subcommands.
    struct Target: ParsableArguments {
        @OptionGroup var broker: BrokerOptions

        @Argument(help: "The task queue (or its .dlq).")
        var queue: String

        var deadLetterQueue: String { DeadLetterQueueAdmin.deadLetterQueue(for: queue) }

        func validate() throws {
            do {
                try QueueNaming.validateExistingQueue(queue, what: "QUEUE")
                try QueueNaming.validateExistingQueue(deadLetterQueue, what: "its dead-letter queue")
            } catch let error as QueueNameError {
                throw ValidationError(error.message)
            }
        }

        func connect() async throws -> DeadLetterQueueAdmin {
            try await broker.connectAdmin()
        }

        /// Runs `body` with an admin connection; broker errors exit 4.
        func run<T>(_ body: (DeadLetterQueueAdmin) async throws -> T) async throws -> T {
            // A missing queue is answered below in words: the AMQP layer's
            // warning about the closed channel (and the info lines) would
            // only confuse; errors are still logged.
            LoggingSystem.bootstrap { label in
                var handler = StreamLogHandler.standardError(label: label)
                handler.logLevel = .error
                return handler
            }
            let admin = try await connect()
            do {
                let value = try await body(admin)
                await admin.close()
                return value
            } catch let error as ExitCode {
                await admin.close()
                throw error
            } catch where BrokerOptions.isMissingQueue(error) {
                // Not an unreachable broker: no worker declared the queue
                // on this vhost. Said in words; the exit status is the
                // documented one for a refused request (4), as `purge`'s.
                printError(
                    "qtasks: \(deadLetterQueue) does not exist (404 NOT_FOUND: no worker has declared \(queue) on this vhost, or the queue was deleted)")
                await admin.close()
                throw ExitStatus.brokerFailure
            } catch {
                printError("qtasks: \(deadLetterQueue): \(error)")
                await admin.close()
                throw ExitStatus.brokerFailure
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Count the messages and print one line each: position, uuid, task, failed at, attempts, reason.")

        @OptionGroup var target: Target

        @Option(help: "Most messages to print.")
        var limit: Int = 100

        func validate() throws {
            guard limit >= 0 else { throw ValidationError("--limit must be >= 0") }
        }

        func run() async throws {
            let queue = target.deadLetterQueue
            try await target.run { admin in
                let count = try await admin.count(queue)
                print("\(queue): \(count) message\(count == 1 ? "" : "s")")
                // Bodies over 1 MiB are not loaded for a listing.
                for letter in try await admin.browse(queue, limit: limit, maxBodySize: 1_048_576) {
                    // One line per message whatever the producer put in its
                    // fields: control characters are escaped.
                    // The name and uuid as the producer's format carries
                    // them (Celery's headers, Dramatiq's actor_name, ...).
                    let identity = letter.identity
                    print(
                        [
                            String(letter.position), identity.uuid ?? "-", identity.taskName ?? "-",
                            letter.failedAt.map(DLQCommand.time) ?? "-", letter.attempts.map(String.init) ?? "-",
                            letter.reason,
                        ].map(LogText.sanitized).joined(separator: "\t"))
                }
                fflush(nil)
            }
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print one message in full: properties, headers, body.")

        @OptionGroup var target: Target

        @Option(help: "Its position in the queue, 1 for the first (default 1).")
        var position: Int = 1

        @Option(help: "Pick the message by task uuid instead (searches the first 10000).")
        var uuid: String?

        @Flag(help: "Print the whole body, however large (default: the first 64 KiB).")
        var full = false

        func validate() throws {
            guard position >= 1 else { throw ValidationError("--position must be >= 1") }
        }

        func run() async throws {
            let queue = target.deadLetterQueue
            let found: DeadLetter? = try await target.run { admin in
                let letters = try await admin.browse(queue, limit: uuid == nil ? position : 10_000)
                if let uuid { return letters.first { $0.uuid == uuid } }
                return letters.count >= position ? letters[position - 1] : nil
            }
            guard let letter = found else {
                printError("qtasks: no such message in \(queue)")
                throw ExitCode(2)
            }
            print(DLQCommand.describe(letter, bodyLimit: full ? nil : 65_536))
            fflush(nil)
        }
    }

    struct Replay: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Move messages back to their origin queue (confirmed before removal), attempts reset.")

        @OptionGroup var target: Target

        @Option(help: "Most messages to move, 0 or more (default: all that are there now).")
        var limit: Int?

        func validate() throws {
            if let limit, limit < 0 { throw ValidationError("--limit must be >= 0") }
        }

        func run() async throws {
            let queue = target.deadLetterQueue
            try await target.run { admin in
                let limit: Int
                if let given = self.limit { limit = given } else { limit = try await admin.count(queue) }
                let moved = try await admin.replay(queue, limit: limit)
                let total = moved.values.reduce(0, +)
                print("replayed \(total) message\(total == 1 ? "" : "s") from \(queue)")
                for (origin, count) in moved.sorted(by: { $0.key < $1.key }) { print("\(origin)\t\(count)") }
                fflush(nil)
            }
        }
    }

    struct Purge: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Delete every message of the dead-letter queue (asks first unless --yes).")

        @OptionGroup var target: Target

        @Flag(help: "Do not ask for confirmation.")
        var yes = false

        func run() async throws {
            let queue = target.deadLetterQueue
            if !yes {
                FileHandle.standardError.write(Data("Delete every message in \(queue)? Type 'yes' to confirm: ".utf8))
                // Declined: status 1, so a script sees nothing was purged
                // (64 would call it a usage error, which it is not).
                guard readLine()?.trimmingCharacters(in: .whitespaces).lowercased() == "yes" else {
                    printError("qtasks: not purged (answer 'yes', or pass --yes)")
                    throw ExitCode(1)
                }
            }
            try await target.run { admin in
                let count = try await admin.purge(queue)
                print("purged \(count) message\(count == 1 ? "" : "s") from \(queue)")
                fflush(nil)
            }
        }
    }

    static func time(_ seconds: Double) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return formatter.string(from: Date(timeIntervalSince1970: seconds))
    }

    static func describe(_ letter: DeadLetter, bodyLimit: Int? = nil) -> String {
        let p = letter.message.properties
        var lines: [String] = []
        let identity = letter.identity
        lines.append("uuid: \(LogText.sanitized(identity.uuid ?? "-"))")
        lines.append("task: \(LogText.sanitized(identity.taskName ?? "-"))")
        lines.append("format: \(identity.format)")
        lines.append("reason: \(LogText.sanitized(letter.reason))")
        lines.append("origin queue: \(letter.originQueue ?? "-")")
        lines.append("attempts: \(letter.attempts.map(String.init) ?? "-")")
        lines.append("first failed at: \(letter.firstFailedAt.map(time) ?? "-")")
        lines.append("last failed at: \(letter.failedAt.map(time) ?? "-")")
        lines.append("properties:")
        let fields: [(String, String?)] = [
            ("content_type", p.contentType), ("message_id", p.messageID), ("correlation_id", p.correlationID),
            ("reply_to", p.replyTo), ("delivery_mode", p.persistent ? "2" : "1"),
            ("priority", p.priority.map(String.init)), ("timestamp", p.timestamp.map(String.init)),
        ]
        for (name, value) in fields { if let value { lines.append("  \(name): \(value)") } }
        lines.append("headers:")
        for (key, value) in p.headers.sorted(by: { $0.key < $1.key }) { lines.append("  \(key): \(text(value))") }
        let body = letter.message.body
        lines.append("body (\(body.count) bytes):")
        let shown = bodyLimit.map { Array(body.prefix($0)) } ?? body
        if let text = String(validating: shown, as: UTF8.self) ?? (shown.count < body.count ? String(decoding: shown, as: UTF8.self) : nil) {
            lines.append(text)
            if shown.count < body.count { lines.append("… \(body.count - shown.count) more bytes (--full prints them)") }
        } else {
            lines.append("<not UTF-8> " + body.prefix(256).map { String(format: "%02x", $0) }.joined())
        }
        return lines.joined(separator: "\n")
    }

    private static func text(_ value: HeaderValue) -> String {
        switch value {
        case .bool(let v): return String(v)
        case .int(let v): return String(v)
        case .double(let v): return String(v)
        case .string(let v): return v
        case .bytes(let v): return "<\(v.count) bytes>"
        case .array(let v): return "[" + v.map(text).joined(separator: ", ") + "]"
        case .table(let v): return "{" + v.sorted { $0.key < $1.key }.map { "\($0.key): \(text($0.value))" }.joined(separator: ", ") + "}"
        case .void: return "null"
        }
    }
}
