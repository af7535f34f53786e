import AMQP
import Foundation
import QTasks
import Testing

/// A result message as it arrived on a reply queue: the raw body, its JSON
/// object, the AMQP properties.
struct ResultMessage: Sendable, CustomStringConvertible {
    let body: [UInt8]
    let text: String
    let object: [String: JSONValue]
    let correlationID: String?
    let contentType: String?

    init(_ delivery: AMQPDelivery) throws {
        try self.init(body: delivery.body, correlationID: delivery.properties.correlationID, contentType: delivery.properties.contentType)
    }

    init(body: [UInt8], correlationID: String?, contentType: String?) throws {
        self.body = body
        self.text = String(decoding: body, as: UTF8.self)
        guard case .object(let object) = try JSONDecoder().decode(JSONValue.self, from: Data(body)) else {
            throw TimeoutError("result is not a JSON object: \(text)")
        }
        self.object = object
        self.correlationID = correlationID
        self.contentType = contentType
    }

    var description: String { "correlation_id=\(correlationID ?? "nil") \(text)" }

    var uuid: String? { object["uuid"]?.stringValue }
    var status: String? { object["status"]?.stringValue }
    var returning: JSONValue? { object["returning"] }
    var traceback: String? { object["traceback"]?.stringValue }

    static let documentedFields: Set<String> = [
        "uuid", "task_name", "status", "returning", "traceback", "created_at", "updated_at", "retry",
    ]

    /// Checks every field of the documented result body (docs/wire-format.md):
    /// exactly the eight fields; `uuid` and `task_name` as given (nil `uuid`:
    /// any non-empty string); `status`; `returning` (null on error);
    /// `traceback` null on success, a string containing each of
    /// `tracebackContains` on error; `created_at` a Unix time (equal to
    /// `createdAt` when given), `updated_at` not before it; `retry` 0.
    func expectDocumented(
        uuid: String?, taskName: String, status: String, returning: JSONValue? = nil,
        tracebackContains: [String] = [], createdAt: Double? = nil, retry: Int64 = 0,
        sourceLocation: SourceLocation = #_sourceLocation
    ) {
        #expect(Set(object.keys) == Self.documentedFields, "\(self)", sourceLocation: sourceLocation)
        if let uuid {
            #expect(object["uuid"] == .string(uuid), "\(self)", sourceLocation: sourceLocation)
        } else {
            #expect(self.uuid?.isEmpty == false, "\(self)", sourceLocation: sourceLocation)
        }
        #expect(object["task_name"] == .string(taskName), "\(self)", sourceLocation: sourceLocation)
        #expect(object["status"] == .string(status), "\(self)", sourceLocation: sourceLocation)
        if status == "success" {
            #expect(object["returning"] == (returning ?? .null), "\(self)", sourceLocation: sourceLocation)
            #expect(object["traceback"] == .null, "\(self)", sourceLocation: sourceLocation)
        } else {
            #expect(object["returning"] == .null, "\(self)", sourceLocation: sourceLocation)
            let traceback = self.traceback ?? ""
            #expect(!traceback.isEmpty, "\(self)", sourceLocation: sourceLocation)
            for part in tracebackContains {
                #expect(traceback.contains(part), "traceback lacks \"\(part)\": \(self)", sourceLocation: sourceLocation)
            }
        }
        let now = Date().timeIntervalSince1970
        let created = object["created_at"]?.doubleValue ?? -1
        let updated = object["updated_at"]?.doubleValue ?? -1
        if let createdAt {
            #expect(abs(created - createdAt) < 0.001, "\(self)", sourceLocation: sourceLocation)
        } else {
            #expect(created > now - 600 && created <= now + 1, "\(self)", sourceLocation: sourceLocation)
        }
        #expect(updated >= created && updated <= now + 1, "\(self)", sourceLocation: sourceLocation)
        #expect(object["retry"] == .int(retry), "\(self)", sourceLocation: sourceLocation)
        #expect(contentType == "application/json", "\(self)", sourceLocation: sourceLocation)
    }
}
