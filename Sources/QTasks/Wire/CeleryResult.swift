import Foundation

/// A task's outcome in the form Celery's `rpc://` result backend reads
/// (`celery.backends.rpc.RPCBackend`): the worker publishes it to a Celery
/// message's `reply_to` with its `correlation_id`, `content_type`
/// `application/json` and `content_encoding` `utf-8`.
///
/// Body:
/// `{"task_id", "status", "result", "traceback", "children", "date_done"}`,
/// `status` one of `SUCCESS`, `FAILURE`, `REVOKED`. On `SUCCESS`, `result`
/// is what the handler returned. On `FAILURE`, `result` is
/// `{"exc_type": "<Swift error type>", "exc_message": ["<message>"],
/// "exc_module": null}`: Celery then raises an exception class of that
/// name (made on the fly, module `celery.backends.base`) whose `str()` is
/// the message. A task that cancelled itself is `REVOKED` with Celery's own
/// `celery.exceptions.TaskRevokedError`.
public struct CeleryResult: Sendable, Hashable {
    /// Celery's state names.
    public static let success = "SUCCESS"
    public static let failure = "FAILURE"
    public static let revoked = "REVOKED"
    static let revokedPrefix = "TaskRevokedError: "

    public var taskID: String
    /// `SUCCESS`, `FAILURE` or `REVOKED`.
    public var status: String
    /// The value on success; the serialized exception otherwise.
    public var result: JSONValue
    /// `"ErrorType: message"` on failure, else nil.
    public var traceback: String?
    /// When the task finished, Unix seconds (written as ISO 8601, UTC).
    public var dateDone: Double

    /// The Celery form of a result.
    ///
    /// - Parameters:
    ///   - result: the outcome as the worker reports it to QTasks clients.
    ///   - failure: the error's type and message when the task failed
    ///     (else read back from `result.traceback`).
    public init(_ result: TaskResult, failure: TaskFailure? = nil) {
        taskID = result.uuid
        dateDone = result.updatedAt
        switch result.status {
        case .success:
            status = Self.success
            self.result = result.returning ?? .null
            traceback = nil
        case .cancel:
            status = Self.revoked
            // "TaskRevokedError: expired" (an expired task) reads as
            // Celery's own TaskRevokedError('expired').
            var reason = result.traceback ?? "cancelled"
            if reason.hasPrefix(Self.revokedPrefix) { reason.removeFirst(Self.revokedPrefix.count) }
            self.result = Self.exception(type: "TaskRevokedError", message: reason, module: "celery.exceptions")
            traceback = nil
        default:
            let failure = failure ?? Self.failure(fromTraceback: result.traceback)
            status = Self.failure
            self.result = Self.exception(type: failure.errorType, message: failure.message, module: nil)
            traceback = failure.traceback
        }
    }

    /// Celery's serialized exception (`Backend.prepare_exception` with the
    /// JSON serializer).
    static func exception(type: String, message: String, module: String?) -> JSONValue {
        ["exc_type": .string(type), "exc_message": [.string(message)], "exc_module": module.map(JSONValue.string) ?? .null]
    }

    /// Splits `"Type: message"`; a traceback without a type reads as
    /// `Error`.
    static func failure(fromTraceback traceback: String?) -> TaskFailure {
        guard let traceback, let colon = traceback.range(of: ": ") else {
            return TaskFailure(errorType: "Error", message: traceback ?? "the task failed")
        }
        return TaskFailure(
            errorType: String(traceback[..<colon.lowerBound]), message: String(traceback[colon.upperBound...]))
    }

    /// The body: compact UTF-8 JSON, non-ASCII text unescaped.
    public func jsonBytes() -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(192 + taskID.utf8.count)
        bytes.append(contentsOf: #"{"task_id":"#.utf8)
        JSONValue.writeString(taskID, to: &bytes)
        bytes.append(contentsOf: #","status":"#.utf8)
        JSONValue.writeString(status, to: &bytes)
        bytes.append(contentsOf: #","result":"#.utf8)
        result.write(to: &bytes)
        bytes.append(contentsOf: #","traceback":"#.utf8)
        if let traceback { JSONValue.writeString(traceback, to: &bytes) } else { bytes.append(contentsOf: "null".utf8) }
        bytes.append(contentsOf: #","children":[],"date_done":"#.utf8)
        JSONValue.writeString(Self.isoDate(dateDone), to: &bytes)
        bytes.append(UInt8(ascii: "}"))
        return bytes
    }

    /// Python's `datetime.isoformat()` of an aware UTC time:
    /// `2025-11-30T01:02:03.456789+00:00`.
    static func isoDate(_ seconds: Double) -> String {
        let whole = seconds.rounded(.down)
        let micros = Int(((seconds - whole) * 1_000_000).rounded()).clamped(0, 999_999)
        var time = time_t(whole)
        var parts = tm()
        gmtime_r(&time, &parts)
        func pad(_ value: Int32, _ width: Int) -> String {
            let text = String(value)
            return String(repeating: "0", count: max(0, width - text.count)) + text
        }
        let microText = String(micros)
        return "\(pad(parts.tm_year + 1900, 4))-\(pad(parts.tm_mon + 1, 2))-\(pad(parts.tm_mday, 2))"
            + "T\(pad(parts.tm_hour, 2)):\(pad(parts.tm_min, 2)):\(pad(parts.tm_sec, 2))"
            + "." + String(repeating: "0", count: 6 - microText.count) + microText + "+00:00"
    }
}

extension Int {
    fileprivate func clamped(_ low: Int, _ high: Int) -> Int { Swift.min(Swift.max(self, low), high) }
}
