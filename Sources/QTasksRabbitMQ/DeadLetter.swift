import Foundation
import QTasks

/// A message in a dead-letter queue, with why it is there: read from the
/// worker's `x-qtasks-*` headers, or from RabbitMQ's own `x-death` header
/// when the broker dead-lettered it (a quorum queue's delivery limit, a
/// rejected oversize message).
public struct DeadLetter: Sendable {
    /// The message as stored (body and properties, headers included).
    public var message: Message
    /// 1 for the first message of the queue.
    public var position: Int

    /// The task uuid as the message's format carries it (``TaskIdentity``):
    /// a QTasks body's `uuid` (else the `message_id`), Celery's `id`
    /// header, Dramatiq's `message_id`, Taskiq's `task_id`.
    public var uuid: String? { identity.uuid }

    /// The task name as the message's format carries it: a QTasks or
    /// Taskiq body's `task_name`, Celery's `task` header, Dramatiq's
    /// `actor_name`.
    public var taskName: String? { identity.taskName }

    /// The message's format, task name and uuid.
    public var identity: TaskIdentity { TaskIdentity(of: message) }

    /// `"ErrorType: message"` from the worker's headers, else RabbitMQ's
    /// reason (`delivery_limit`, `rejected`, `expired`, `maxlen`).
    public var reason: String {
        let headers = message.properties.headers
        if case .string(let type)? = headers[MessageHeaders.errorType] {
            if case .string(let text)? = headers[MessageHeaders.errorMessage] { return "\(type): \(text)" }
            return type
        }
        if let death = latestDeath, case .string(let reason)? = death["reason"] {
            return "dead-lettered by RabbitMQ: \(reason)"
        }
        return "unknown"
    }

    /// The queue the message failed in: the worker's header, else the
    /// queue named by RabbitMQ's `x-death`.
    public var originQueue: String? {
        if case .string(let queue)? = message.properties.headers[MessageHeaders.originQueue] { return queue }
        if let death = latestDeath, case .string(let queue)? = death["queue"] { return queue }
        return nil
    }

    /// When the last attempt failed (or RabbitMQ dead-lettered it), Unix seconds.
    public var failedAt: Double? {
        if let time = Self.number(message.properties.headers[MessageHeaders.failedAt]) { return time }
        if let death = latestDeath { return Self.number(death["time"]) }
        return nil
    }

    /// When the first attempt failed, Unix seconds.
    public var firstFailedAt: Double? { Self.number(message.properties.headers[MessageHeaders.firstFailedAt]) ?? failedAt }

    /// Attempts made: the worker's count, else RabbitMQ's delivery count.
    public var attempts: Int? {
        let headers = message.properties.headers
        if let attempts = Self.number(headers[MessageHeaders.attempts]) { return Int(attempts) }
        if let count = Self.number(headers["x-delivery-count"]) { return Int(count) }
        return nil
    }

    /// The newest entry of RabbitMQ's `x-death` header.
    var latestDeath: [String: HeaderValue]? {
        guard case .array(let deaths)? = message.properties.headers["x-death"], case .table(let first)? = deaths.first else {
            return nil
        }
        return first
    }

    private static func number(_ value: HeaderValue?) -> Double? {
        switch value {
        case .double(let number)?: return number
        case .int(let number)?: return Double(number)
        case .string(let text)?: return Double(text)
        default: return nil
        }
    }
}
