import Foundation
import Logging

/// Runs one delivery's task and says how it went, without any broker I/O:
/// the ``Worker`` settles the delivery from the ``TaskOutcome``.
///
/// Decodes the body and the handler's arguments in one `JSONDecoder` pass,
/// runs the handler with ``TaskContext/current`` set, and encodes what it
/// returned. Bad input never throws: it is a `.rejected` outcome whose
/// result's `traceback` is `"TaskInputError: <what is wrong>"`. When even
/// the uuid or the task name cannot be read, the result's `uuid` is the
/// message's `message_id` (else a new UUID) and its `task_name` is `""`.
public struct TaskExecutor: Sendable {
    /// Bodies larger than this are rejected unread, in bytes.
    public let maxMessageBytes: Int
    private let catalog: TaskCatalog
    private let decoder: JSONDecoder
    private let logger: Logger

    /// - Parameters:
    ///   - app: the tasks; those registered after this call are not seen.
    ///   - maxMessageBytes: bodies over this size are rejected, in bytes
    ///     (default 1 MiB).
    ///   - logger: handed to tasks through ``TaskContext/logger``.
    public init(app: TaskApp, maxMessageBytes: Int = 1_048_576, logger: Logger = Logger(label: "qtasks.worker")) {
        self.maxMessageBytes = maxMessageBytes
        self.catalog = app.catalog()
        self.decoder = TaskEnvelope.makeDecoder(catalog: catalog)
        self.logger = logger
    }

    /// Runs the task a delivery carries.
    ///
    /// Never throws: every failure is an outcome. Cancellation of the
    /// calling task while the handler runs gives `.cancelled`.
    public func execute(_ delivery: Delivery) async -> TaskOutcome {
        let properties = delivery.message.properties
        let body = delivery.message.body
        let attempt = TaskContext.attempt(from: properties.headers)
        guard body.count <= maxMessageBytes else {
            return rejection(
                TaskInputError(.oversizeMessage, "task message body is \(body.count) bytes, over the limit of \(maxMessageBytes) bytes"),
                properties: properties,
                attempt: attempt
            )
        }
        let envelope: TaskEnvelope
        do {
            envelope = try TaskEnvelope.decode(body, catalog: catalog, messageID: properties.messageID, decoder: decoder)
        } catch {
            return rejection(error, properties: properties, attempt: attempt)
        }
        let context = TaskContext(
            uuid: envelope.uuid,
            taskName: envelope.taskName,
            attempt: attempt,
            queue: delivery.queue,
            redelivered: delivery.redelivered,
            priority: envelope.priority,
            createdAt: envelope.createdAt,
            arguments: envelope.call.arguments ?? TaskArguments(body: body),
            properties: properties,
            logger: logger
        )
        do {
            let returning = try await TaskContext.$current.withValue(context) {
                try await envelope.call.run(context)
            }
            return .completed(result(context, .success, returning: returning))
        } catch {
            if Task.isCancelled {
                return .cancelled(result(context, .cancel, traceback: "CancellationError: the worker cancelled the task"))
            }
            let failure = TaskFailure(error)
            return .failed(result(context, .error, traceback: failure.traceback), failure)
        }
    }

    private func result(
        _ context: TaskContext,
        _ status: TaskStatus,
        returning: JSONValue? = nil,
        traceback: String? = nil
    ) -> TaskResult {
        TaskResult(
            uuid: context.uuid,
            taskName: context.taskName,
            status: status,
            returning: returning?.isNull == true ? nil : returning,
            traceback: traceback,
            createdAt: context.createdAt,
            updatedAt: Date().timeIntervalSince1970,
            retry: context.attempt - 1
        )
    }

    private func rejection(_ error: TaskInputError, properties: MessageProperties, attempt: Int) -> TaskOutcome {
        let now = Date().timeIntervalSince1970
        let failure = TaskFailure(errorType: "TaskInputError", message: error.message)
        let result = TaskResult(
            uuid: error.uuid ?? properties.messageID ?? UUID().uuidString.lowercased(),
            taskName: error.taskName ?? "",
            status: .error,
            returning: nil,
            traceback: failure.traceback,
            createdAt: now,
            updatedAt: now,
            retry: attempt - 1
        )
        return .rejected(result, failure)
    }
}
