import Foundation
@testable import QTasks
import Testing

/// Reading Celery, Dramatiq and Taskiq messages, and the rule that tells
/// the formats apart: pure values, no broker.
@Suite struct ForeignFormatTests {
    static func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }

    static func celery(_ headers: [String: HeaderValue] = [:], task: String = "add") -> MessageProperties {
        var all: [String: HeaderValue] = ["task": .string(task), "id": .string("c-1"), "eta": .void, "expires": .void,
                                          "retries": .int(0), "timelimit": .array([.void, .void])]
        all.merge(headers) { $1 }
        return MessageProperties(contentType: "application/json", contentEncoding: "utf-8", correlationID: "c-1", replyTo: "r", headers: all)
    }

    static func body(_ object: JSONValue) -> [UInt8] {
        var bytes: [UInt8] = []
        object.write(to: &bytes)
        return bytes
    }

    static func qtasksBody(_ task: InboundTask) throws -> [String: JSONValue] {
        try #require(try JSONDecoder().decode(JSONValue.self, from: Data(task.body)).objectValue)
    }

    // MARK: detection

    @Test func detectionRule() {
        let none = MessageProperties()
        #expect(WireFormat(detecting: Self.celery(), body: Self.bytes("[[1], {}, {}]")) == .celery)
        #expect(WireFormat(detecting: none, body: Self.bytes(#"{"actor_name": "add", "message_id": "m"}"#)) == .dramatiq)
        #expect(WireFormat(detecting: none, body: Self.bytes(#"{"task_id": "t", "task_name": "add", "labels": {}}"#)) == .taskiq)
        #expect(WireFormat(detecting: none, body: Self.bytes(#"{"task_name": "add", "args": []}"#)) == .qtasks)
        // The keys must be the object's own, not text inside a value.
        #expect(WireFormat(detecting: none, body: Self.bytes(#"{"task_name": "log", "args": ["\"actor_name\"", {"labels": 1}]}"#)) == .qtasks)
        // task_id without labels is not Taskiq; labels alone neither.
        #expect(WireFormat(detecting: none, body: Self.bytes(#"{"task_id": "t", "task_name": "add"}"#)) == .qtasks)
        #expect(WireFormat(detecting: none, body: Self.bytes(#"{"task_name": "add", "labels": {}}"#)) == .qtasks)
        // The Celery header wins over any body.
        #expect(WireFormat(detecting: Self.celery(), body: Self.bytes(#"{"actor_name": "x"}"#)) == .celery)
        // Not JSON at all: QTasks, whose reading says what is wrong.
        #expect(WireFormat(detecting: none, body: Self.bytes(#"{"labels": "#)) == .qtasks)
    }

    /// The scan that decides whether a body needs parsing to tell its
    /// format: the same answer as a plain search for either key, at every
    /// position, the ends and near-misses included.
    @Test func foreignKeyScanFindsTheKeysAnywhere() {
        func naive(_ body: [UInt8]) -> Bool {
            for key in [Array(#""actor_name""#.utf8), Array(#""labels""#.utf8)] where body.count >= key.count {
                for start in 0...(body.count - key.count) where Array(body[start..<start + key.count]) == key { return true }
            }
            return false
        }
        let bodies = [
            "", "\"", #""labels""#, #""actor_name""#, #""labels"#, #""actor_nam""#, #"x"labels""#, #"{"a": "actor_name"}"#,
            #"{"task_name": "t", "args": []}"#, #"{"x": 1, "labels"#, #"{"x": 1, "actor_name"#, #"{"x": 1, "actor_name""#,
            #""la""labels""#, #"""actor_name": 1}"#, #"{"lab": 1, "label": 2, "labels_types": 3}"#, #"{"y": "a", "l": "l"}"#,
        ]
        for body in bodies {
            let bytes = Array(body.utf8)
            #expect(WireFormat.mayBeForeign(bytes) == naive(bytes), "\(body)")
        }
    }

    /// The name and uuid each format carries, as `qtasks dlq list` shows
    /// them: Celery's headers, Dramatiq's `actor_name`/`message_id`,
    /// Taskiq's `task_id` (not the AMQP `message_id` aio-pika sets).
    @Test func identityOfEachFormat() {
        func identity(_ properties: MessageProperties, _ body: String) -> TaskIdentity {
            TaskIdentity(of: Message(body: Self.bytes(body), properties: properties))
        }
        #expect(identity(Self.celery(task: "billing.add"), "[[1], {}, {}]") == TaskIdentity(format: .celery, taskName: "billing.add", uuid: "c-1"))
        #expect(
            identity(MessageProperties(messageID: "amqp-id"), #"{"actor_name": "add", "message_id": "d-1", "queue_name": "q"}"#)
                == TaskIdentity(format: .dramatiq, taskName: "add", uuid: "d-1"))
        #expect(
            identity(MessageProperties(messageID: "aio-pika-id"), #"{"task_id": "t-1", "task_name": "mod:add", "labels": {}}"#)
                == TaskIdentity(format: .taskiq, taskName: "mod:add", uuid: "t-1"))
        #expect(identity(MessageProperties(), #"{"uuid": "q-1", "task_name": "add"}"#) == TaskIdentity(format: .qtasks, taskName: "add", uuid: "q-1"))
        #expect(identity(MessageProperties(messageID: "m-1"), #"{"task_name": "add"}"#).uuid == "m-1")
        // Not JSON: nothing but the AMQP id.
        #expect(identity(MessageProperties(messageID: "m-2"), "not json") == TaskIdentity(format: .qtasks, taskName: nil, uuid: "m-2"))
    }

    @Test func aMessageThatFitsNoFormatNamesWhatIsMissing() {
        let message = Message(body: Self.bytes(#"{"name": "add", "args": [1]}"#))
        let error = #expect(throws: TaskInputError.self) {
            let task = try InboundTask.read(message)
            _ = try TaskEnvelope.decode(task.body, catalog: nil, messageID: nil)
        }
        #expect(error?.code == .invalidField)
        for missing in ["task_name", "'task' (Celery)", "'actor_name' (Dramatiq)", "'task_id' with 'labels' (Taskiq)"] {
            #expect(error?.message.contains(missing) == true, "\(error?.message ?? "")")
        }
    }

    // MARK: times

    @Test(arguments: [
        ("2026-12-06T02:37:18.656693+00:00", 1_796_524_638.656693),
        ("2026-12-06T02:37:18Z", 1_796_524_638.0),
        ("2026-12-06T03:37:18+01:00", 1_796_524_638.0),
        ("2026-12-06T01:07:18-0130", 1_796_524_638.0),
        ("2026-12-06 02:37:18", 1_796_524_638.0),
        ("2026-12-06T02:37", 1_796_524_620.0),
    ])
    func readsPythonIsoformat(text: String, seconds: Double) throws {
        let read = try #require(ISOTime.seconds(from: text))
        #expect(abs(read - seconds) < 1e-5, "\(text): \(read)")
    }

    @Test(arguments: ["", "tomorrow", "2026-02-30T00:00:00", "2026-12-06T25:00:00", "2026-12-06T02:37:18+0", "2026-12-06T02:37:18.", "1796524638"])
    func refusesWhatIsNotAnIsoTime(text: String) {
        #expect(ISOTime.seconds(from: text) == nil)
    }

    @Test func isoTextRoundTrips() throws {
        let seconds = 1_796_524_638.25
        #expect(try #require(ISOTime.seconds(from: ISOTime.text(seconds))) == seconds)
    }

    // MARK: Celery

    @Test func celeryInstructionsAreRead() throws {
        let properties = Self.celery([
            "eta": .string("2026-12-06T02:37:18.5+00:00"), "expires": .string("2026-12-06T03:00:00+00:00"),
            "retries": .int(2), "timelimit": .array([.int(10), .void]), "root_id": .string("root"), "parent_id": .string("p"),
        ])
        let task = try InboundTask.read(Message(body: Self.bytes("[[1, 2], {}, null]"), properties: properties))
        #expect(task.format == .celery)
        #expect(task.notBefore == 1_796_524_638.5)
        #expect(task.expiresAt == 1_796_526_000)
        #expect(task.retries == 2)
        #expect(task.timeLimit == .seconds(10))
        #expect(task.canvas?.rootID == "root")
        #expect(task.canvas?.parentID == "p")
        #expect(try Self.qtasksBody(task) == ["uuid": "c-1", "task_name": "add", "args": [1, 2], "kwargs": [:]])
    }

    @Test(arguments: [
        (["eta": HeaderValue.string("soon")], "Celery header eta must be an ISO 8601 time, found 'soon'"),
        (["expires": .int(30)], "Celery header expires must be an ISO 8601 time"),
        (["timelimit": .array([.void, .int(5)])], "Celery header timelimit has a soft time limit (5.0 s)"),
        (["timelimit": .array([.int(0), .void])], "Celery header timelimit has a hard limit of 0.0 s"),
        (["timelimit": .string("10")], "Celery header timelimit must be [hard, soft]"),
        (["retries": .int(-1)], "Celery header retries must be a non-negative integer"),
    ])
    func celeryHeadersThatCannotBeHonouredAreRefused(headers: [String: HeaderValue], message: String) {
        let error = #expect(throws: TaskInputError.self) {
            try InboundTask.read(Message(body: Self.bytes("[[1, 2], {}, {}]"), properties: Self.celery(headers)))
        }
        #expect(error?.message.hasPrefix(message) == true, "\(error?.message ?? "")")
        #expect(error?.uuid == "c-1")
        #expect(error?.taskName == "add")
    }

    @Test(arguments: [
        (#"{"chord": {"task": "tsum", "args": [], "kwargs": {}, "options": {}}}"#, "Celery chords are not supported (callback 'tsum')"),
        (#"{"callbacks": [{"task": "x", "subtask_type": "chain", "kwargs": {"tasks": []}}]}"#, "Celery embed.callbacks[0] is a 'chain' signature"),
        (#"{"callbacks": [{"args": []}]}"#, "Celery embed.callbacks[0] has no task name"),
        (#"{"errbacks": [{"task": "e", "options": {"exchange": "other"}}]}"#, "Celery embed.errbacks[0] is routed to exchange"),
        (#"{"chain": [{"task": "x", "options": {"soft_time_limit": 3}}]}"#, "Celery embed.chain[0] asks for a soft time limit"),
        (#"{"chain": [{"task": "t"}, {"task": "celery.group", "subtask_type": "group", "kwargs": {"tasks": [{"task": "a"}]}}]}"#,
         "Celery chain has a group followed by more tasks"),
        (#"{"chain": "next"}"#, "Celery embed.chain must be a list of signatures, found string"),
        (#"[1]"#, "Celery embed must be an object, found array"),
    ])
    func celeryCanvasThatCannotBeHonouredIsRefused(embed: String, message: String) {
        let error = #expect(throws: TaskInputError.self) {
            try InboundTask.read(Message(body: Self.bytes("[[1, 2], {}, \(embed)]"), properties: Self.celery()))
        }
        #expect(error?.code == .invalidField)
        #expect(error?.message.hasPrefix(message) == true, "\(error?.message ?? "")")
        #expect(error?.uuid == "c-1")
    }

    /// The chain and callbacks of a real Celery 5.5.3 message (captured
    /// with pika from `chain(add.s(1, 2), add.s(3), mul.si(4))` and
    /// `send_task(..., link=..., link_error=...)`).
    static let chainBody = #"""
        [[1, 2], {}, {"callbacks": null, "errbacks": null, "chain": [{"task": "mul", "args": [4], "kwargs": {}, "options": {"task_id": "70eff834-48b6-4742-bc67-b527de8f97b9", "reply_to": "2d2bf39a"}, "subtask_type": null, "immutable": true}, {"task": "add", "args": [3], "kwargs": {}, "options": {"task_id": "d91c2482-f989-4a98-abb9-fb69cb690d4a", "reply_to": "2d2bf39a"}, "subtask_type": null, "immutable": false}], "chord": null}]
        """#

    @Test func chainNextStepGetsTheResultAndTheRestOfTheChain() throws {
        let properties = Self.celery(["root_id": .string("c-1")])
        let canvas = try #require(try InboundTask.read(Message(body: Self.bytes(Self.chainBody), properties: properties)).canvas)
        let followUps = CeleryFollowUps.afterSuccess(canvas, taskID: "c-1", returning: 3, now: 0)
        #expect(followUps.count == 1)
        guard case .task(let message, let queue)? = followUps.first else { Issue.record("no task"); return }
        #expect(queue == nil)
        #expect(message.properties.headers["task"] == .string("add"))
        #expect(message.properties.headers["id"] == .string("d91c2482-f989-4a98-abb9-fb69cb690d4a"))
        #expect(message.properties.correlationID == "d91c2482-f989-4a98-abb9-fb69cb690d4a")
        #expect(message.properties.replyTo == "2d2bf39a")
        #expect(message.properties.headers["parent_id"] == .string("c-1"))
        #expect(message.properties.headers["root_id"] == .string("c-1"))
        // The next message reads as a Celery message whose chain is the rest.
        let next = try InboundTask.read(message)
        #expect(try Self.qtasksBody(next)["args"] == [3, 3])
        let rest = try #require(next.canvas)
        #expect(rest.chain.map(\.task) == ["mul"])
        // The immutable last step ignores its parent's result.
        let last = CeleryFollowUps.afterSuccess(rest, taskID: "d91c2482-f989-4a98-abb9-fb69cb690d4a", returning: 6, now: 0)
        guard case .task(let final, _)? = last.first else { Issue.record("no last step"); return }
        #expect(try Self.qtasksBody(try InboundTask.read(final))["args"] == [4])
        #expect(final.properties.headers["root_id"] == .string("c-1"))
        #expect(try InboundTask.read(final).canvas?.isEmpty == true)
    }

    @Test func callbacksAndErrbacksAsACeleryWorkerPublishesThem() throws {
        let embed = #"""
            {"callbacks": [{"task": "add", "args": [10], "kwargs": {}, "options": {}, "subtask_type": null, "immutable": false},
                           {"task": "log", "args": [], "kwargs": {"level": "info"}, "options": {"queue": "logs", "priority": 3}, "immutable": true}],
             "errbacks": [{"task": "on_err", "args": ["ctx"], "kwargs": {}, "options": {}, "subtask_type": null, "immutable": false}],
             "chain": null, "chord": null}
            """#
        let canvas = try #require(try InboundTask.read(Message(body: Self.bytes("[[1, 2], {}, \(embed)]"), properties: Self.celery())).canvas)
        let success = CeleryFollowUps.afterSuccess(canvas, taskID: "c-1", returning: 3, now: 0)
        #expect(success.count == 2)
        guard case .task(let link, nil)? = success.first, case .task(let log, "logs")? = success.last else {
            Issue.record("\(success)"); return
        }
        #expect(try Self.qtasksBody(try InboundTask.read(link))["args"] == [3, 10])
        #expect(try Self.qtasksBody(try InboundTask.read(log))["args"] == [])
        #expect(log.properties.priority == 3)
        // Unfrozen signatures get ids from their parent and place: the same
        // on every publish, different for each follow-up.
        let id = try #require(link.properties.correlationID)
        #expect(id == CeleryFollowUps.derivedID(parent: "c-1", role: "link0", index: 0))
        #expect(UUID(uuidString: id) != nil)
        #expect(id != log.properties.correlationID)
        #expect(CeleryFollowUps.afterSuccess(canvas, taskID: "c-1", returning: 3, now: 0) == success)
        #expect(link.properties.replyTo == nil)

        let failure = TaskFailure(errorType: "Boom", message: "ошибка")
        let failed = CeleryFollowUps.afterFailure(canvas, taskID: "c-1", failure: failure, errbacks: true, now: 0)
        guard case .task(let errback, nil)? = failed.first, failed.count == 1 else { Issue.record("\(failed)"); return }
        // Celery's old-style errback: the failed task's id first.
        #expect(try Self.qtasksBody(try InboundTask.read(errback))["args"] == ["c-1", "ctx"])
        #expect(errback.properties.headers["parent_id"] == .string("c-1"))
        #expect(CeleryFollowUps.afterFailure(canvas, taskID: "c-1", failure: failure, errbacks: false, now: 0).isEmpty)
    }

    @Test func aFailedChainStepFailsTheStepsThatWillNotRun() throws {
        let canvas = try #require(try InboundTask.read(Message(body: Self.bytes(Self.chainBody), properties: Self.celery())).canvas)
        let failure = TaskFailure(errorType: "Boom", message: "no luck")
        let followUps = CeleryFollowUps.afterFailure(canvas, taskID: "c-1", failure: failure, errbacks: true, now: 0)
        let ids = followUps.compactMap { followUp -> String? in
            guard case .result(let message, "2d2bf39a") = followUp else { return nil }
            let body = try? JSONDecoder().decode(JSONValue.self, from: Data(message.body))
            #expect(body?.objectValue?["status"] == "FAILURE")
            #expect(body?.objectValue?["result"]?.objectValue?["exc_type"] == "Boom")
            return message.properties.correlationID
        }
        #expect(ids == ["d91c2482-f989-4a98-abb9-fb69cb690d4a", "70eff834-48b6-4742-bc67-b527de8f97b9"])
    }

    @Test func aGroupCallbackPublishesEachMember() throws {
        let embed = #"""
            {"chain": [{"task": "celery.group", "args": [], "kwargs": {"tasks": [
                {"task": "add", "args": [3], "kwargs": {}, "options": {"task_id": "g0", "reply_to": "r", "group_index": 0}},
                {"task": "add", "args": [4], "kwargs": {}, "options": {"task_id": "g1", "reply_to": "r", "group_index": 1}}]},
              "options": {"task_id": "group-1"}, "subtask_type": "group", "immutable": false}]}
            """#
        let canvas = try #require(try InboundTask.read(Message(body: Self.bytes("[[1, 2], {}, \(embed)]"), properties: Self.celery())).canvas)
        let messages = CeleryFollowUps.afterSuccess(canvas, taskID: "c-1", returning: 3, now: 0).compactMap { followUp -> Message? in
            if case .task(let message, _) = followUp { message } else { nil }
        }
        #expect(messages.map(\.properties.correlationID) == ["g0", "g1"])
        #expect(messages.map { $0.properties.headers["group"] } == [.string("group-1"), .string("group-1")])
        #expect(try messages.map { try Self.qtasksBody(try InboundTask.read($0))["args"] } == [[3, 3], [3, 4]])
    }

    // MARK: Dramatiq

    static let dramatiqBody = #"""
        {"queue_name": "default", "actor_name": "add", "args": [2, 3], "kwargs": {"x": 1},
         "options": {"eta": 1796524638500, "retries": 1, "time_limit": 1500, "max_retries": 3, "redis_message_id": "r"},
         "message_id": "5f0c2a4e-8b1d-4c6e-9a57-3e2f1b0d9c84", "message_timestamp": 1796524600000}
        """#

    @Test func dramatiqMessageIsRead() throws {
        let task = try InboundTask.read(Message(body: Self.bytes(Self.dramatiqBody)))
        #expect(task.format == .dramatiq)
        #expect(task.notBefore == 1_796_524_638.5)
        #expect(task.retries == 1)
        #expect(task.timeLimit == .milliseconds(1500))
        #expect(task.expiresAt == nil)
        #expect(try Self.qtasksBody(task) == [
            "uuid": "5f0c2a4e-8b1d-4c6e-9a57-3e2f1b0d9c84", "task_name": "add", "args": [2, 3], "kwargs": ["x": 1],
            "created_at": 1_796_524_600.0,
        ])
        let aged = try InboundTask.read(Message(body: Self.bytes(
            #"{"actor_name": "add", "message_id": "m", "message_timestamp": 1000, "options": {"max_age": 500}}"#)))
        #expect(aged.expiresAt == 1.5)
    }

    @Test(arguments: [
        (#"{"actor_name": "add"}"#, "Dramatiq message has no message_id string"),
        (#"{"actor_name": 5, "message_id": "m"}"#, "Dramatiq message has no actor_name string"),
        (#"{"actor_name": "add", "message_id": "m", "args": {"a": 1}}"#, "Dramatiq args must be a JSON array, found object"),
        (#"{"actor_name": "add", "message_id": "m", "kwargs": []}"#, "Dramatiq kwargs must be a JSON object, found array"),
        (#"{"actor_name": "add", "message_id": "m", "options": {"eta": "later"}}"#, "Dramatiq options.eta must be a non-negative number of milliseconds"),
        (#"{"actor_name": "add", "message_id": "m", "options": {"retries": 1.5}}"#, "Dramatiq options.retries must be a non-negative integer"),
        (#"{"actor_name": "add", "message_id": "m", "options": {"pipe_target": {"actor_name": "next"}}}"#, "Dramatiq a pipeline step (pipe_target) is not supported"),
        (#"{"actor_name": "add", "message_id": "m", "options": {"on_failure": "report"}}"#, "Dramatiq an on_failure callback is not supported"),
        (#"{"actor_name": "add", "message_id": "m", "options": {"max_age": 10}}"#, "Dramatiq options.max_age needs a message_timestamp"),
        (#"["actor_name"]"#, "task message must be a JSON object"),
    ])
    func badDramatiqMessagesAreRefused(body: String, message: String) {
        let error = #expect(throws: TaskInputError.self) {
            let task = try InboundTask.read(Message(body: Self.bytes(body)))
            _ = try TaskEnvelope.decode(task.body, catalog: nil, messageID: nil)
        }
        #expect(error?.message.hasPrefix(message) == true, "\(error?.message ?? "")")
    }

    @Test func dramatiqDelayQueueBelongsToItsQueue() {
        #expect(DramatiqProtocol.canonicalQueue("default.DQ") == "default")
        #expect(DramatiqProtocol.canonicalQueue("default") == "default")
    }

    // MARK: Taskiq

    static let taskiqBody = #"""
        {"task_id": "7b1f0c3e9d2a4f6b8c5e1a0d3f7b9c2e", "task_name": "add", "labels": {"delay": 30, "timeout": "2.5", "_retries": 2, "custom": "x"},
         "labels_types": {"delay": 2, "timeout": 1}, "args": [2, 3], "kwargs": {}}
        """#

    @Test func taskiqMessageIsRead() throws {
        let task = try InboundTask.read(Message(body: Self.bytes(Self.taskiqBody)), now: 1000)
        #expect(task.format == .taskiq)
        #expect(task.notBefore == 1030)
        #expect(task.timeLimit == .milliseconds(2500))
        #expect(task.retries == 2)
        #expect(try Self.qtasksBody(task) == [
            "uuid": "7b1f0c3e9d2a4f6b8c5e1a0d3f7b9c2e", "task_name": "add", "args": [2, 3], "kwargs": [:],
        ])
        // Through taskiq-aio-pika's delay queue: it has waited already.
        let expired = MessageProperties(headers: ["x-death": .array([.table(["reason": .string("expired"), "queue": .string("taskiq.delay")])])])
        #expect(try InboundTask.read(Message(body: Self.bytes(Self.taskiqBody), properties: expired), now: 1000).notBefore == nil)
        // A copy the worker deferred keeps its absolute time.
        let deferred = MessageProperties(headers: [MessageHeaders.notBefore: .double(1030), "x-death": .array([.table(["reason": .string("expired")])])])
        #expect(try InboundTask.read(Message(body: Self.bytes(Self.taskiqBody), properties: deferred), now: 1029).notBefore == 1030)
    }

    @Test(arguments: [
        (#"{"task_id": "t", "labels": {}}"#, "Taskiq message has no task_name string"),
        (#"{"task_id": 7, "task_name": "add", "labels": {}}"#, "Taskiq message has no task_id string"),
        (#"{"task_id": "t", "task_name": "add", "labels": []}"#, "Taskiq labels must be a JSON object, found array"),
        (#"{"task_id": "t", "task_name": "add", "labels": {"delay": "soon"}}"#, "Taskiq labels.delay must be a non-negative number of seconds"),
        (#"{"task_id": "t", "task_name": "add", "labels": {}, "args": "2, 3"}"#, "Taskiq args must be a JSON array, found string"),
        (#"{"task_id": "t", "task_name": "add", "labels": {}, "kwargs": [1]}"#, "Taskiq kwargs must be a JSON object, found array"),
    ])
    func badTaskiqMessagesAreRefused(body: String, message: String) {
        let error = #expect(throws: TaskInputError.self) {
            try InboundTask.read(Message(body: Self.bytes(body)))
        }
        #expect(error?.code == .invalidField)
        #expect(error?.message.hasPrefix(message) == true, "\(error?.message ?? "")")
    }
}
