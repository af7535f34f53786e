import Foundation

/// The messages a Celery worker publishes once a task has run, made from
/// the message's ``CeleryCanvas`` (Celery 5.5: `celery.app.trace`,
/// `Backend.mark_as_failure`, `Backend._call_task_errbacks`).
///
/// Each follow-up task is a protocol 2 message (``CeleryProtocol``) that a
/// Celery worker or this one runs: `args` are the signature's with the
/// parent's result (or, for an errback, the failed task's id) prepended
/// unless it is immutable; `id` is the signature's `task_id`, or, for a
/// signature the client did not freeze, an id derived from the parent's id
/// and the follow-up's place (``derivedID(parent:role:index:)``), so that
/// publishing again after a crash gives the same id. Headers `root_id` (the
/// workflow's first task) and `parent_id` (this task) are set; `reply_to`
/// is the signature's own (a signature without one publishes no result,
/// as a Celery worker's default reply queue is nobody's).
enum CeleryFollowUps {
    /// One message to publish.
    enum FollowUp: Sendable, Equatable {
        /// A task message, to `queue` (the signature's `queue` or
        /// `routing_key` option; nil: the queue the parent came from).
        case task(Message, queue: String?)
        /// A result for a chain element that will not run now (its
        /// parent failed), to its `reply_to`.
        case result(Message, replyTo: String)
    }

    /// After a success: the callbacks, then the chain's next step.
    static func afterSuccess(
        _ canvas: CeleryCanvas, taskID: String, returning: JSONValue, now: Double = Date().timeIntervalSince1970
    ) -> [FollowUp] {
        let rootID = canvas.rootID ?? taskID
        var out: [FollowUp] = []
        for (index, callback) in canvas.callbacks.enumerated() {
            out += tasks(
                for: callback, prepending: returning, role: "link\(index)", parentID: taskID, rootID: rootID, chain: [],
                now: now)
        }
        if let next = canvas.chain.last {
            out += tasks(
                for: next, prepending: returning, role: "chain", parentID: taskID, rootID: rootID,
                chain: Array(canvas.rawChain.dropLast()), now: now)
        }
        return out
    }

    /// After a failure: `FAILURE` for the chain's elements that will not
    /// run, then (when `errbacks`) the errbacks with the failed task's id.
    static func afterFailure(
        _ canvas: CeleryCanvas, taskID: String, failure: TaskFailure, errbacks: Bool,
        now: Double = Date().timeIntervalSince1970
    ) -> [FollowUp] {
        var out: [FollowUp] = []
        for element in canvas.chain.reversed() where element.members == nil {
            guard let id = element.taskID, let replyTo = element.replyTo,
                  element.options["ignore_result"]?.boolValue != true
            else { continue }
            let result = TaskResult(
                uuid: id, taskName: element.task, status: .error, returning: nil, traceback: failure.traceback,
                createdAt: now, updatedAt: now, retry: 0)
            let properties = MessageProperties(
                contentType: "application/json", contentEncoding: "utf-8", correlationID: id)
            out.append(.result(Message(body: CeleryResult(result, failure: failure).jsonBytes(), properties: properties), replyTo: replyTo))
        }
        guard errbacks else { return out }
        let rootID = canvas.rootID ?? taskID
        for (index, errback) in canvas.errbacks.enumerated() {
            out += tasks(
                for: errback, prepending: .string(taskID), role: "link_error\(index)", parentID: taskID, rootID: rootID,
                chain: [], now: now)
        }
        return out
    }

    /// The task messages of one signature: itself, or a group's members.
    private static func tasks(
        for signature: CelerySignature, prepending: JSONValue, role: String, parentID: String, rootID: String,
        chain: [JSONValue], now: Double
    ) -> [FollowUp] {
        guard let members = signature.members else {
            let id = signature.taskID ?? derivedID(parent: parentID, role: role, index: 0)
            return [message(for: signature, prepending: prepending, taskID: id, parentID: parentID, rootID: rootID, chain: chain, now: now)]
        }
        let groupID = signature.taskID ?? derivedID(parent: parentID, role: role + ".group", index: 0)
        return members.enumerated().map { index, member in
            var member = member
            if member.options["group_id"] == nil { member.options["group_id"] = .string(groupID) }
            if member.options["group_index"] == nil { member.options["group_index"] = .int(Int64(index)) }
            let id = member.taskID ?? derivedID(parent: parentID, role: role, index: index)
            return message(for: member, prepending: prepending, taskID: id, parentID: parentID, rootID: rootID, chain: [], now: now)
        }
    }

    /// A protocol 2 task message for `signature`, as `send_task` with the
    /// signature's options would publish it.
    static func message(
        for signature: CelerySignature, prepending: JSONValue?, taskID: String, parentID: String, rootID: String,
        chain: [JSONValue], now: Double
    ) -> FollowUp {
        let options = signature.options
        var args = signature.args
        if let prepending, !signature.immutable { args.insert(prepending, at: 0) }
        func time(_ key: String) -> HeaderValue {
            switch options[key] {
            case .string(let text)?: return .string(text)
            case .int(let seconds)?: return .string(ISOTime.text(now + Double(seconds)))
            case .double(let seconds)? where seconds.isFinite: return .string(ISOTime.text(now + seconds))
            default: return .void
            }
        }
        var eta = time("eta")
        if eta == .void, let countdown = options["countdown"].flatMap(ForeignBody.number) {
            eta = .string(ISOTime.text(now + countdown))
        }
        let hardLimit: HeaderValue = options["time_limit"].flatMap(ForeignBody.number).map { .double($0) } ?? .void
        let headers: [String: HeaderValue] = [
            "lang": .string("py"),
            "task": .string(signature.task),
            "id": .string(taskID),
            "shadow": .void,
            "eta": eta,
            "expires": time("expires"),
            "group": options["group_id"]?.stringValue.map(HeaderValue.string) ?? .void,
            "group_index": options["group_index"]?.intValue.map(HeaderValue.int) ?? .void,
            "retries": .int(0),
            "timelimit": .array([hardLimit, .void]),
            "root_id": .string(rootID),
            "parent_id": .string(parentID),
            "argsrepr": .string(JSONValue.array(args).description),
            "kwargsrepr": .string(JSONValue.object(signature.kwargs).description),
            "origin": .string(origin),
            "ignore_result": .bool(options["ignore_result"]?.boolValue ?? false),
            "replaced_task_nesting": .int(0),
            "stamped_headers": .void,
            "stamps": .table([:]),
        ]
        var priority: UInt8?
        if let value = options["priority"]?.intValue, (0...255).contains(value) { priority = UInt8(value) }
        let properties = MessageProperties(
            contentType: "application/json", contentEncoding: "utf-8", persistent: true, priority: priority,
            correlationID: taskID, replyTo: signature.replyTo, headers: headers)
        let link = signature.linked("link")
        let linkError = signature.linked("link_error")
        let embed: JSONValue = [
            "callbacks": link.isEmpty ? .null : .array(link),
            "errbacks": linkError.isEmpty ? .null : .array(linkError),
            "chain": chain.isEmpty ? .null : .array(chain),
            "chord": .null,
        ]
        var body: [UInt8] = []
        JSONValue.array([.array(args), .object(signature.kwargs), embed]).write(to: &body)
        var queue = options["queue"]?.stringValue
        if queue == nil, let key = options["routing_key"]?.stringValue, !key.isEmpty { queue = key }
        return .task(Message(body: body, properties: properties), queue: queue)
    }

    /// `origin` header: who published the follow-up.
    static let origin = "swift-qtasks@" + ProcessInfo.processInfo.hostName

    /// A uuid-shaped id that depends only on its inputs (two 64-bit FNV-1a
    /// hashes; version 8, "custom", of RFC 9562): the same follow-up of the
    /// same parent always gets the same id, so that one published twice
    /// (a crash before the ack) is recognisable as a duplicate.
    static func derivedID(parent: String, role: String, index: Int) -> String {
        let text = Array("\(parent)/\(role)/\(index)".utf8)
        func fnv(_ seed: UInt64) -> UInt64 {
            var hash: UInt64 = 0xcbf2_9ce4_8422_2325 ^ seed
            for byte in text {
                hash ^= UInt64(byte)
                hash &*= 0x0000_0100_0000_01B3
            }
            return hash
        }
        var bytes = withUnsafeBytes(of: fnv(0).bigEndian, Array.init) + withUnsafeBytes(of: fnv(0x9e37_79b9_7f4a_7c15).bigEndian, Array.init)
        bytes[6] = (bytes[6] & 0x0F) | 0x80  // version 8
        bytes[8] = (bytes[8] & 0x3F) | 0x80  // RFC 4122 variant
        let hex = bytes.map { String($0, radix: 16).count == 1 ? "0" + String($0, radix: 16) : String($0, radix: 16) }.joined()
        let characters = Array(hex)
        return [0..<8, 8..<12, 12..<16, 16..<20, 20..<32].map { String(characters[$0]) }.joined(separator: "-")
    }
}
