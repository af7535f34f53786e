import Foundation

/// A task that was sent: wait for its typed result with
/// ``value(timeout:)``, or for the whole result message with
/// ``result(timeout:)``.
///
/// `Output` is the result type of the ``TaskDefinition`` it was sent with,
/// or ``JSONValue`` for a task sent by name.
///
/// The client keeps a result for a handle only while the handle exists;
/// dropping the handle (fire and forget) lets the client discard the result
/// when it arrives.
public final class TaskHandle<Output: Decodable & Sendable>: Sendable {
    /// The task's uuid (also its `message_id` and `correlation_id`).
    public let uuid: String
    /// The task name it was sent with.
    public let taskName: String
    /// The queue it was sent to.
    public let queue: String
    private let slot: ReplySlot
    private let client: TaskClient

    init(uuid: String, taskName: String, queue: String, slot: ReplySlot, client: TaskClient) {
        self.uuid = uuid
        self.taskName = taskName
        self.queue = queue
        self.slot = slot
        self.client = client
    }

    /// The headers of the result message once it arrived (after
    /// ``result(timeout:)`` returned), else nil. They carry the trace
    /// context of the worker's span (`traceparent`, `tracestate`): continue
    /// the task's trace from it with
    /// `tracer.extract(headers, into: &context, using: HeaderExtractor())`.
    public var resultHeaders: [String: HeaderValue]? { slot.headers }

    deinit {
        client.forget(uuid)
    }

    /// Waits for the task's result and returns what its handler returned.
    ///
    /// ```swift
    /// let sum: Int = try await client.send(Tasks.add, 2, 3).value(timeout: .seconds(5))
    /// ```
    ///
    /// - Parameter timeout: how long to wait for the result message.
    /// - Returns: the result's `returning`, decoded as `Output`.
    /// - Throws: ``TaskFailedError`` when the task failed (`.failed`, with
    ///   the remote error's type, message and traceback), was cancelled
    ///   (`.cancelled`), or returned what does not decode as `Output`
    ///   (`.unexpectedResult`); otherwise as ``result(timeout:)``.
    public func value(timeout: Duration) async throws -> Output {
        try Self.value(of: try await result(timeout: timeout))
    }

    /// The typed value of a result message: what ``value(timeout:)``
    /// returns for it.
    ///
    /// - Throws: ``TaskFailedError``.
    public static func value(of result: TaskResult) throws -> Output {
        switch result.status {
        case .success:
            let returning = result.returning ?? .null
            if let value = returning as? Output { return value }
            do {
                return try JSONDecoder().decode(Output.self, from: Data(try JSONEncoder().encode(returning)))
            } catch {
                throw TaskFailedError(
                    .unexpectedResult, result: result,
                    message: "the result does not decode as \(Output.self): \(DecodingErrorText.describe(error))")
            }
        case .cancel:
            throw TaskFailedError(.cancelled, result: result)
        default:
            // `error`, or a status of a newer worker: not a success.
            throw TaskFailedError(.failed, result: result)
        }
    }

    /// Waits for the task's result message. Can be called again (after a
    /// timeout, or to read the same result twice).
    ///
    /// - Parameter timeout: how long to wait; zero or less checks once,
    ///   anything over a billion seconds waits that long.
    /// - Returns: the result, whatever its status (`success`, `error`, `cancel`).
    /// - Throws: ``TaskClientError`` `.timeout` when no result arrived in
    ///   time, `.closed` / `.replyQueueLost` when it cannot arrive any more;
    ///   `CancellationError` when the calling task is cancelled.
    public func result(timeout: Duration) async throws -> TaskResult {
        if let result = slot.result { return result }
        let slot = self.slot
        // A negative timeout is none; a huge one (past what a sleep's
        // deadline can hold) is a billion seconds, "for ever".
        let timeout = Seconds.clamped(timeout)
        return try await withThrowingTaskGroup(of: TaskResult?.self) { group in
            group.addTask { try await slot.wait() }
            group.addTask {
                try await Task.sleep(for: timeout)
                return nil
            }
            defer { group.cancelAll() }
            if let result = try await group.next() ?? nil {
                return result
            }
            throw TaskClientError(.timeout, "no result for task '\(taskName)' (uuid \(uuid)) within \(timeout)", uuid: uuid)
        }
    }
}
