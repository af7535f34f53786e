import Foundation
import QTasks
import QTasksRabbitMQ
import Testing

/// The pure logic of plain task queues: the policy that replaces their
/// dead-letter and delivery-limit arguments, and the reading of RabbitMQ's
/// 406 for a queue that exists with other arguments. No server.
struct QueuePolicyTests {
    @Test func policyOfAQuorumQueue() {
        let policy = TaskQueuePolicy(queue: "orders", queueType: .quorum, deliveryLimit: 5)
        #expect(policy.name == "qtasks.orders")
        #expect(policy.pattern == "^orders$")
        #expect(policy.applyTo == "queues")
        #expect(policy.priority == 10)
        #expect(
            policy.definition == [
                "dead-letter-exchange": "", "dead-letter-routing-key": "orders.dlq", "delivery-limit": 5,
            ])
        #expect(policy.definitionJSON == #"{"dead-letter-exchange":"","dead-letter-routing-key":"orders.dlq","delivery-limit":5}"#)
        let unlimited = TaskQueuePolicy(queue: "orders", queueType: .quorum, deliveryLimit: nil, priority: 3)
        #expect(unlimited.definition["delivery-limit"] == nil)
        #expect(unlimited.priority == 3)
    }

    /// RabbitMQ does not apply to a classic queue a policy that holds
    /// `delivery-limit` (not even its dead-letter keys): a classic queue's
    /// policy never has it.
    @Test func policyOfAClassicQueueHasNoDeliveryLimit() {
        let policy = TaskQueuePolicy(queue: "orders", queueType: .classic, deliveryLimit: 5)
        #expect(policy.definition == ["dead-letter-exchange": "", "dead-letter-routing-key": "orders.dlq"])
        #expect(policy.deliveryLimit == 5)
    }

    /// The pattern matches the queue and nothing else: not its `.dlq`, not
    /// its retry queues (which keep their own arguments), not a longer name.
    @Test(arguments: ["orders", "QueueTasks:task_queue", "it-a.b-1", "a+b*c?(d)[e]{f}|g^h$i\\j", "очередь 1", "x/y"])
    func patternMatchesOnlyTheQueue(queue: String) throws {
        let pattern = TaskQueuePolicy.pattern(matchingOnly: queue)
        let regex = try NSRegularExpression(pattern: pattern)
        func matches(_ name: String) -> Bool {
            regex.firstMatch(in: name, range: NSRange(name.startIndex..., in: name)) != nil
        }
        #expect(matches(queue), "\(pattern)")
        for other in [queue + ".dlq", queue + ".retry.1000", "x" + queue, queue + "x", String(queue.dropLast())] {
            #expect(!matches(other), "\(pattern) matches \(other)")
        }
    }

    @Test func patternEscapesPunctuationOnly() {
        #expect(TaskQueuePolicy.pattern(matchingOnly: "QueueTasks:task_queue") == #"^QueueTasks\:task_queue$"#)
        #expect(TaskQueuePolicy.pattern(matchingOnly: "a.b-c") == #"^a\.b\-c$"#)
        #expect(TaskQueuePolicy.pattern(matchingOnly: "очередь") == "^очередь$")
    }

    @Test func keysNotInForce() {
        let policy = TaskQueuePolicy(queue: "q", queueType: .quorum, deliveryLimit: 2)
        #expect(policy.keysNotInForce(in: policy.definition).isEmpty)
        // A JSON reader may give a whole number as a double.
        var effective = policy.definition
        effective["delivery-limit"] = .double(2)
        effective["max-length"] = 100
        #expect(policy.keysNotInForce(in: effective).isEmpty)
        effective["dead-letter-routing-key"] = "elsewhere"
        effective["delivery-limit"] = nil
        #expect(policy.keysNotInForce(in: effective) == ["dead-letter-routing-key", "delivery-limit"])
        #expect(policy.keysNotInForce(in: [:]) == ["dead-letter-exchange", "dead-letter-routing-key", "delivery-limit"])
    }

    @Test func rabbitmqctlArguments() {
        let policy = TaskQueuePolicy(queue: "QueueTasks:task_queue", queueType: .classic, deliveryLimit: 5)
        #expect(
            policy.rabbitmqctlArguments(virtualHost: "/") == [
                "set_policy", "--vhost", "/", "--priority", "10", "--apply-to", "queues", "qtasks.QueueTasks:task_queue",
                #"^QueueTasks\:task_queue$"#,
                #"{"dead-letter-exchange":"","dead-letter-routing-key":"QueueTasks:task_queue.dlq"}"#,
            ])
    }

    @Test func configurationBuildsThePolicyFromItsQueueTypeAndDeliveryLimit() {
        var configuration = RabbitMQBrokerConfiguration()
        #expect(configuration.taskQueuePolicy(for: "q").queueType == .classic)
        #expect(configuration.taskQueuePolicy(for: "q").definition["delivery-limit"] == nil)
        configuration.queueType = .quorum
        #expect(configuration.taskQueuePolicy(for: "q").definition["delivery-limit"] == 5)
        configuration.deliveryLimit = nil
        #expect(configuration.taskQueuePolicy(for: "q").definition["delivery-limit"] == nil)
        // An x-queue-type among the queue arguments wins, as in the declaration.
        configuration = RabbitMQBrokerConfiguration()
        configuration.queueArguments = ["x-queue-type": "quorum"]
        #expect(configuration.taskQueuePolicy(for: "q").queueType == .quorum)
    }

    // MARK: RabbitMQ's 406 for a redeclaration

    @Test func readsTheInequivalentArgumentShapes() throws {
        let quorum = try #require(
            QueueArgumentConflict(
                replyText:
                    "PRECONDITION_FAILED - inequivalent arg 'x-queue-type' for queue 'q' in vhost '/': received none but current is the value 'quorum' of type 'longstr'"
            ))
        #expect(quorum == QueueArgumentConflict(argument: "x-queue-type", current: "quorum", received: nil))

        let types = try #require(
            QueueArgumentConflict(
                replyText:
                    "PRECONDITION_FAILED - inequivalent arg 'x-queue-type' for queue 'q' in vhost '/': received 'classic' but current is 'quorum'"
            ))
        #expect(types == QueueArgumentConflict(argument: "x-queue-type", current: "quorum", received: "classic"))

        let deadLetter = try #require(
            QueueArgumentConflict(
                replyText:
                    "PRECONDITION_FAILED - inequivalent arg 'x-dead-letter-exchange' for queue 'q' in vhost '/': received none but current is the value '' of type 'longstr'"
            ))
        #expect(deadLetter == QueueArgumentConflict(argument: "x-dead-letter-exchange", current: "", received: nil))

        let ours = try #require(
            QueueArgumentConflict(
                replyText:
                    "PRECONDITION_FAILED - inequivalent arg 'x-max-priority' for queue 'q' in vhost '/': received the value '5' of type 'signedint' but current is none"
            ))
        #expect(ours == QueueArgumentConflict(argument: "x-max-priority", current: nil, received: "5"))

        #expect(QueueArgumentConflict(replyText: "ACCESS_REFUSED - access to queue 'q' refused") == nil)
        #expect(QueueArgumentConflict(replyText: "") == nil)
    }

    @Test func protectionNotes() {
        let dramatiq = QueueArgumentConflict(argument: "x-dead-letter-exchange", current: "", received: nil)
        let note = dramatiq.protectionNote(queue: "q", policy: "qtasks.q")
        #expect(note.contains("dead-letters by its own arguments"), "\(note)")
        #expect(note.contains("not to q.dlq"), "\(note)")
        #expect(note.contains("the worker still publishes its own failures to q.dlq"), "\(note)")

        let quorum = QueueArgumentConflict(argument: "x-queue-type", current: "quorum", received: nil)
        #expect(quorum.protectionNote(queue: "q", policy: "qtasks.q").contains("a quorum queue: it counts deliveries"))

        let classic = QueueArgumentConflict(argument: "x-queue-type", current: "classic", received: "quorum")
        #expect(classic.protectionNote(queue: "q", policy: "qtasks.q").contains("no delivery counting"))

        let other = QueueArgumentConflict(argument: "x-max-length", current: "1000", received: nil)
        #expect(other.protectionNote(queue: "q", policy: "qtasks.q") == "an argument of its owner, x-max-length '1000': the worker does not depend on it")
    }
}
