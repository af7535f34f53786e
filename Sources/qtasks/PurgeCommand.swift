import ArgumentParser
import Foundation
import Logging
import QTasksRabbitMQ

/// `qtasks purge QUEUE`: deletes the ready messages of a task queue.
struct PurgeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "purge",
        abstract: "Delete every ready message of a task queue (asks first unless --yes).",
        discussion: """
            Runs AMQP queue.purge on QUEUE and prints how many messages were deleted. Messages a \
            worker holds unacknowledged are not touched. Without --yes it asks on standard input; \
            any answer other than 'yes' (or no input) exits 1 without purging. The dead-letter queue \
            has its own command, `qtasks dlq purge`.

            Exit status: 0 purged; 1 declined; 4 the broker could not be reached or the queue does \
            not exist.
            """)

    @OptionGroup var broker: BrokerOptions

    @Argument(help: "The queue to purge.")
    var queue: String

    @Flag(help: "Do not ask for confirmation.")
    var yes = false

    func validate() throws {
        guard !queue.isEmpty, queue.utf8.count <= 255 else { throw ValidationError("QUEUE must be 1 to 255 bytes") }
    }

    func run() async throws {
        if !yes {
            FileHandle.standardError.write(Data("Delete every ready message in \(queue)? Type 'yes' to confirm: ".utf8))
            guard readLine()?.trimmingCharacters(in: .whitespaces).lowercased() == "yes" else {
                printError("qtasks: not purged (answer 'yes', or pass --yes)")
                throw ExitCode(1)
            }
        }
        // Probing missing queues is expected (404s): only errors are logged.
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = .error
            return handler
        }
        let admin = try await broker.connectAdmin()
        do {
            let count = try await admin.purge(queue)
            await admin.close()
            print("purged \(count) message\(count == 1 ? "" : "s") from \(queue)")
            fflush(nil)
        } catch {
            printError("qtasks: \(queue): \(error)")
            await admin.close()
            throw ExitStatus.brokerFailure
        }
    }
}
