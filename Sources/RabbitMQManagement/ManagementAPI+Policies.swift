import Foundation

/// A RabbitMQ policy as the management API reads and writes it
/// (`/api/policies/{vhost}/{name}`; RabbitMQ's "Policies" guide,
/// https://www.rabbitmq.com/docs/policies).
public struct RabbitMQPolicy: Sendable, Hashable {
    public var name: String
    /// A regular expression over queue (or exchange) names.
    public var pattern: String
    /// `queues`, `exchanges`, `all`, … (RabbitMQ's `apply-to`).
    public var applyTo: String
    /// The matching policy with the highest priority is the one applied.
    public var priority: Int
    /// Keys such as `dead-letter-exchange`, `delivery-limit`.
    public var definition: [String: ManagementValue]

    public init(name: String, pattern: String, applyTo: String, priority: Int, definition: [String: ManagementValue]) {
        self.name = name
        self.pattern = pattern
        self.applyTo = applyTo
        self.priority = priority
        self.definition = definition
    }

    init?(_ object: [String: Any]) {
        guard let name = object["name"] as? String, let pattern = object["pattern"] as? String else { return nil }
        self.init(
            name: name, pattern: pattern, applyTo: (object["apply-to"] as? String) ?? "all",
            priority: (object["priority"] as? NSNumber)?.intValue ?? 0,
            definition: ManagementValue.table(object["definition"]))
    }
}

/// A value of a queue argument or policy key, as the management API gives
/// it in JSON.
public enum ManagementValue: Sendable, Hashable, CustomStringConvertible {
    case string(String)
    case integer(Int)
    case boolean(Bool)
    /// Anything else (a number with a fraction, a list, a table), as JSON
    /// text.
    case other(String)

    public var description: String {
        switch self {
        case .string(let text): text
        case .integer(let number): String(number)
        case .boolean(let flag): String(flag)
        case .other(let text): text
        }
    }

    init(_ value: Any) {
        if let text = value as? String {
            self = .string(text)
        } else if let number = value as? NSNumber {
            // JSONSerialization gives booleans as NSNumber too, of the
            // Objective-C type `char`.
            if String(cString: number.objCType) == "c" {
                self = .boolean(number.boolValue)
            } else if let integer = Int(exactly: number.doubleValue), !"\(number)".contains(".") {
                self = .integer(integer)
            } else {
                self = .other("\(number)")
            }
        } else if let data = try? JSONSerialization.data(withJSONObject: value, options: [.sortedKeys, .fragmentsAllowed]) {
            self = .other(String(decoding: data, as: UTF8.self))
        } else {
            self = .other("\(value)")
        }
    }

    var jsonObject: Any {
        switch self {
        case .string(let text): text
        case .integer(let number): number
        case .boolean(let flag): flag
        case .other(let text):
            (try? JSONSerialization.jsonObject(with: Data(text.utf8), options: .fragmentsAllowed)) ?? text
        }
    }

    static func table(_ object: Any?) -> [String: ManagementValue] {
        guard let object = object as? [String: Any] else { return [:] }
        return object.mapValues(ManagementValue.init)
    }
}

/// A queue's declaration and the policy in force on it, as the management
/// API reports them (`GET /api/queues/{vhost}/{name}`).
public struct QueueDefinition: Sendable, Hashable {
    public var name: String
    /// `classic`, `quorum`, `stream`; nil when the API does not say.
    public var type: String?
    public var durable: Bool
    /// The arguments it was declared with (`x-dead-letter-exchange`, …).
    public var arguments: [String: ManagementValue]
    /// The name of the policy applied to it; nil for none.
    public var policy: String?
    /// What that policy (merged with any operator policy) sets on it:
    /// `effective_policy_definition`. Arguments, where the queue has them,
    /// may still win (RabbitMQ's "Policies" guide).
    public var effectivePolicyDefinition: [String: ManagementValue]

    init?(_ object: [String: Any]) {
        guard let name = object["name"] as? String else { return nil }
        self.name = name
        self.type = object["type"] as? String
        self.durable = (object["durable"] as? Bool) ?? false
        self.arguments = ManagementValue.table(object["arguments"])
        // An empty policy is "" in some versions, absent or null in others.
        self.policy = (object["policy"] as? String).flatMap { $0.isEmpty ? nil : $0 }
        self.effectivePolicyDefinition = ManagementValue.table(object["effective_policy_definition"])
    }
}

extension RabbitMQManagementAPI {
    /// Creates or replaces a policy: `PUT /api/policies/{vhost}/{name}`.
    /// RabbitMQ applies it at once to every matching queue, existing or
    /// declared later.
    ///
    /// - Throws: ``ManagementAPIError`` (unreachable, 401, 403 for a user
    ///   that is neither `policymaker` nor `administrator`, 400 with
    ///   RabbitMQ's reason for a bad pattern or key).
    public func putPolicy(_ policy: RabbitMQPolicy, virtualHost: String) async throws {
        let body: [String: Any] = [
            "pattern": policy.pattern, "apply-to": policy.applyTo, "priority": policy.priority,
            "definition": policy.definition.mapValues(\.jsonObject),
        ]
        let data = try JSONSerialization.data(withJSONObject: body, options: [.sortedKeys])
        _ = try await request(
            "PUT", "/api/policies/" + Self.encode(virtualHost) + "/" + Self.encode(policy.name), body: data,
            allowingNotFound: false)
    }

    /// One policy: `GET /api/policies/{vhost}/{name}`; nil when there is
    /// none (404).
    public func policy(named name: String, virtualHost: String) async throws -> RabbitMQPolicy? {
        let path = "/api/policies/" + Self.encode(virtualHost) + "/" + Self.encode(name)
        guard let object = try await get(path, allowingNotFound: true) as? [String: Any] else { return nil }
        return RabbitMQPolicy(object)
    }

    /// Deletes a policy: `DELETE /api/policies/{vhost}/{name}`; no error
    /// when there is none.
    public func deletePolicy(named name: String, virtualHost: String) async throws {
        _ = try await request(
            "DELETE", "/api/policies/" + Self.encode(virtualHost) + "/" + Self.encode(name), body: nil,
            allowingNotFound: true)
    }

    /// The type a plain declaration (no `x-queue-type`) makes in a virtual
    /// host: its `default_queue_type` (`rabbitmqctl add_vhost
    /// --default-queue-type quorum`, RabbitMQ 3.10 and later); nil when
    /// none is set (classic) or the virtual host does not exist.
    public func defaultQueueType(virtualHost: String) async throws -> String? {
        let path = "/api/vhosts/" + Self.encode(virtualHost)
        guard let object = try await get(path, allowingNotFound: true) as? [String: Any] else { return nil }
        let type = (object["default_queue_type"] as? String) ?? ((object["metadata"] as? [String: Any])?["default_queue_type"] as? String)
        return type.flatMap { $0.isEmpty || $0 == "undefined" ? nil : $0 }
    }

    /// A queue's declaration and effective policy; nil when the queue
    /// does not exist (404).
    public func queueDefinition(_ name: String, virtualHost: String) async throws -> QueueDefinition? {
        let path = "/api/queues/" + Self.encode(virtualHost) + "/" + Self.encode(name)
        guard let object = try await get(path, allowingNotFound: true) as? [String: Any] else { return nil }
        return QueueDefinition(object)
    }
}
