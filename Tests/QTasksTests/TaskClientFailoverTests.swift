import QTasks
import Synchronization
import Testing

/// A send whose connection is lost is retried through a new reply queue
/// (``PublishRetryPolicy``), and the end of the old queue fails only the
/// tasks sent through it.
@Suite struct TaskClientFailoverTests {
    /// Fast retries, so that the tests do not wait 1.4 s of default backoff.
    static let quickRetry = PublishRetryPolicy(maxAttempts: 4, backoff: Backoff(initial: .milliseconds(10), maximum: .milliseconds(10), jitter: 0))

    @Test func aLostPublishIsRetriedWithTheSameUUIDThroughANewReplyQueue() async throws {
        let broker = LossyBroker()
        let client = TaskClient(broker: broker, logger: quietLogger, publishRetry: Self.quickRetry)
        let before = try await client.send("early")
        broker.failNextPublishes([.connectionLost])
        let retried = try await client.send("late")

        let tries = broker.publishAttempts.filter { $0.properties.messageID == retried.uuid }
        #expect(tries.count == 2)
        #expect(Set(tries.map(\.body)).count == 1, "the same message body, uuid included")
        #expect(tries.allSatisfy { $0.properties.correlationID == retried.uuid })
        let first = try #require(tries.first?.properties.replyTo)
        let second = try #require(tries.last?.properties.replyTo)
        #expect(first != second, "the retry names a new reply queue")
        #expect(broker.inner.messages(in: "default").map(\.properties.messageID) == [before.uuid, retried.uuid])

        // The old queue ends only now, after the retry went through the new
        // one: its reader must not touch the new queue's task.
        broker.endReplyQueue(first)
        let lost = await #expect(throws: TaskClientError.self) { try await before.result(timeout: .seconds(5)) }
        #expect(lost?.code == .replyQueueLost)
        try await broker.answerEveryTask()
        #expect(try await retried.result(timeout: .seconds(30)).returning == "late done")
        // And later sends use the new queue too.
        let after = try await client.send("after")
        #expect(broker.publishAttempts.last?.properties.replyTo == second)
        try await broker.answerEveryTask()
        #expect(try await after.result(timeout: .seconds(30)).returning == "after done")
        await client.close()
        await broker.close()
    }

    /// As on RabbitMQ when a node stops: the publish fails and the reply
    /// queue ends at the same time, in whichever order the client sees them.
    @Test func theOldQueueEndingWithTheLossLeavesTheRetriedTaskAlone() async throws {
        for _ in 0..<20 {
            let broker = LossyBroker()
            let client = TaskClient(broker: broker, logger: quietLogger, publishRetry: Self.quickRetry)
            let before = try await client.send("early")
            broker.failNextPublishes([.connectionLost], endingReplyQueues: true)
            let retried = try await client.send("late")
            let lost = await #expect(throws: TaskClientError.self) { try await before.result(timeout: .seconds(5)) }
            #expect(lost?.code == .replyQueueLost)
            try await broker.answerEveryTask()
            #expect(try await retried.result(timeout: .seconds(30)).returning == "late done")
            await client.close()
            await broker.close()
        }
    }

    /// A queue presumed lost that in fact lives on (the consuming
    /// connection was on a node that stayed up) still delivers the results
    /// of the tasks sent through it.
    @Test func aReplacedQueueThatLivesOnStillDeliversItsResults() async throws {
        let broker = LossyBroker()
        let client = TaskClient(broker: broker, logger: quietLogger, publishRetry: Self.quickRetry)
        let before = try await client.send("early")
        broker.failNextPublishes([.connectionLost])
        let retried = try await client.send("late")
        try await broker.answerEveryTask()
        #expect(try await before.result(timeout: .seconds(30)).returning == "early done")
        #expect(try await retried.result(timeout: .seconds(30)).returning == "late done")
        #expect(broker.replyQueuesMade == 2)
        await client.close()
        await broker.close()
    }

    @Test(
        "Other failures are not retried",
        arguments: [BrokerError.Code.refused, .unroutable, .nacked, .timeout, .closed, .staleDelivery, .connectionFailed])
    func otherFailuresAreNotRetried(code: BrokerError.Code) async throws {
        let broker = LossyBroker()
        let client = TaskClient(broker: broker, logger: quietLogger, publishRetry: Self.quickRetry)
        broker.failNextPublishes([code])
        let error = await #expect(throws: BrokerError.self) { try await client.send("x") }
        #expect(error?.code == code)
        #expect(broker.publishAttempts.count == 1)
        #expect(broker.replyQueuesMade == 1)
        await client.close()
        await broker.close()
    }

    /// Once a connection was lost, a reconnect that no node accepts is part
    /// of the same outage.
    @Test func aFailedReconnectAfterALossIsRetried() async throws {
        let broker = LossyBroker()
        let client = TaskClient(broker: broker, logger: quietLogger, publishRetry: Self.quickRetry)
        broker.failNextPublishes([.connectionLost, .connectionFailed])
        let handle = try await client.send("x")
        #expect(broker.publishAttempts.count == 3)
        try await broker.answerEveryTask()
        #expect(try await handle.result(timeout: .seconds(30)).returning == "x done")
        await client.close()
        await broker.close()
    }

    @Test func attemptsAreBounded() async throws {
        let broker = LossyBroker()
        let policy = PublishRetryPolicy(maxAttempts: 3, backoff: Backoff(initial: .milliseconds(10), jitter: 0))
        let client = TaskClient(broker: broker, logger: quietLogger, publishRetry: policy)
        broker.failNextPublishes(Array(repeating: .connectionLost, count: 10))
        let error = await #expect(throws: BrokerError.self) { try await client.send("x") }
        #expect(error?.code == .connectionLost)
        #expect(broker.publishAttempts.count == 3)
        #expect(Set(broker.publishAttempts.map(\.properties.messageID)).count == 1)

        // One attempt: no retry at all.
        let once = TaskClient(broker: broker, logger: quietLogger, publishRetry: PublishRetryPolicy(maxAttempts: 0))
        await #expect(throws: BrokerError.self) { try await once.send("y") }
        #expect(broker.publishAttempts.count == 4)
        await client.close()
        await once.close()
        await broker.close()
    }

    @Test func theDefaultPolicyIsCeleryLike() {
        let policy = PublishRetryPolicy()
        #expect(policy.maxAttempts == 4)
        #expect((1...3).map { policy.backoff.nominalDelay(forRetry: $0) } == [200, 400, 800].map { .milliseconds($0) })
    }

    /// Many sends lost at once replace their reply queue once, not once each.
    @Test func concurrentLostSendsShareOneNewReplyQueue() async throws {
        let broker = LossyBroker()
        let client = TaskClient(broker: broker, logger: quietLogger, publishRetry: Self.quickRetry)
        let first = try await client.send("first")
        let lostQueue = try #require(broker.publishAttempts.first?.properties.replyTo)
        broker.failPublishes { $0.properties.replyTo == lostQueue }
        let handles = try await withThrowingTaskGroup(of: TaskHandle.self) { group in
            for n in 0..<30 { group.addTask { try await client.send("t\(n)") } }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(broker.replyQueuesMade == 2)
        broker.endReplyQueue(lostQueue)
        try await broker.answerEveryTask()
        for handle in handles {
            #expect(try await handle.result(timeout: .seconds(30)).returning == .string("\(handle.taskName) done"))
        }
        let lost = await #expect(throws: TaskClientError.self) { try await first.result(timeout: .seconds(5)) }
        #expect(lost?.code == .replyQueueLost)
        await client.close()
        await broker.close()
    }

    /// The reply queue ends between taking it and publishing (here while
    /// the client declares the task queue): the task is not published
    /// naming a queue whose reader is gone, where it would wait in vain.
    @Test func aQueueThatEndsBeforeThePublishIsNotNamed() async throws {
        let broker = LossyBroker()
        let client = TaskClient(broker: broker, logger: quietLogger, publishRetry: Self.quickRetry)
        let before = try await client.send("early")
        let lostQueue = try #require(broker.publishAttempts.first?.properties.replyTo)
        broker.beforeDeclaring = {
            broker.endReplyQueue(lostQueue)
            // Let the client's reader see the end.
            try? await Task.sleep(for: .milliseconds(100))
        }
        let handle = try await client.send("late", queue: "other")
        #expect(broker.publishAttempts.last?.properties.replyTo != lostQueue)
        #expect(broker.publishAttempts.count == 2, "the late task published once, through the new queue")
        try await broker.answerEveryTask(queue: "other")
        #expect(try await handle.result(timeout: .seconds(30)).returning == "late done")
        let lost = await #expect(throws: TaskClientError.self) { try await before.result(timeout: .seconds(5)) }
        #expect(lost?.code == .replyQueueLost)
        await client.close()
        await broker.close()
    }

    @Test func sendWithoutReplyNamesNoReplyQueue() async throws {
        let broker = LossyBroker()
        let client = TaskClient(broker: broker, logger: quietLogger, publishRetry: Self.quickRetry)
        broker.failNextPublishes([.connectionLost])
        let sent = try await client.sendWithoutReply("fire", args: [1], queue: "jobs")
        #expect(sent.taskName == "fire" && sent.queue == "jobs")
        let message = try #require(broker.inner.messages(in: "jobs").first)
        #expect(message.properties.replyTo == nil)
        #expect(message.properties.messageID == sent.uuid)
        #expect(message.properties.correlationID == sent.uuid)
        #expect(broker.publishAttempts.count == 2, "retried like any send")
        #expect(broker.replyQueuesMade == 0)
        await client.close()
        await #expect(throws: TaskClientError.self) { try await client.sendWithoutReply("fire") }
        await broker.close()
    }
}

/// A ``Broker`` over a ``MemoryBroker`` (`inner`) whose connection can be
/// lost on cue: chosen publishes to task queues throw, and reply queues end
/// with `.connectionLost`, as on RabbitMQ when a node stops. Stands in for
/// the worker too (``answerEveryTask()``).
final class LossyBroker: Broker {
    let inner = MemoryBroker()

    private struct ReplyRelay {
        var continuation: AsyncThrowingStream<Message, any Error>.Continuation
        var relay: Task<Void, Never>
    }

    private struct State {
        var failures: [(code: BrokerError.Code, endingReplyQueues: Bool)] = []
        var failing: (@Sendable (Message) -> Bool)?
        var attempts: [Message] = []
        var relays: [String: ReplyRelay] = [:]
        var replyQueuesMade = 0
        var beforeDeclaring: (@Sendable () async -> Void)?
    }

    private let state = Mutex(State())

    /// The next publishes throw these codes, one each; with
    /// `endingReplyQueues` the first also ends every reply queue.
    func failNextPublishes(_ codes: [BrokerError.Code], endingReplyQueues: Bool = false) {
        state.withLock { state in
            state.failures = codes.enumerated().map { ($0.element, endingReplyQueues && $0.offset == 0) }
        }
    }

    /// Every publish of a message matching `predicate` throws `.connectionLost`.
    func failPublishes(where predicate: @escaping @Sendable (Message) -> Bool) {
        state.withLock { $0.failing = predicate }
    }

    /// Every publish tried, failed ones included, in order.
    var publishAttempts: [Message] { state.withLock { $0.attempts } }

    var replyQueuesMade: Int { state.withLock { $0.replyQueuesMade } }

    /// Ends a reply queue with `.connectionLost` (the inner one vanishes too).
    func endReplyQueue(_ name: String) {
        guard let relay = state.withLock({ $0.relays.removeValue(forKey: name) }) else { return }
        relay.continuation.finish(throwing: BrokerError(.connectionLost, "connection lost (test)"))
        relay.relay.cancel()
    }

    /// Runs every task waiting in `queue`: a `<task name> done` result to
    /// its reply_to, as a worker would (dropped when that queue is gone).
    func answerEveryTask(queue: String = "default") async throws {
        for message in inner.drain(queue) {
            guard let replyTo = message.properties.replyTo else { continue }
            let task = try TaskMessage(jsonBytes: message.body)
            let result = TaskResult(
                uuid: task.uuid, taskName: task.taskName, status: .success, returning: .string("\(task.taskName) done"),
                createdAt: task.createdAt, updatedAt: task.createdAt)
            do {
                try await inner.publish(
                    Message(body: result.jsonBytes(), properties: MessageProperties(correlationID: message.properties.correlationID)),
                    to: replyTo, mandatory: true)
            } catch let error as BrokerError where error.code == .unroutable {
                continue
            }
        }
    }

    /// Runs before each declaration of a task queue (once).
    var beforeDeclaring: (@Sendable () async -> Void)? {
        get { state.withLock { $0.beforeDeclaring } }
        set { state.withLock { $0.beforeDeclaring = newValue } }
    }

    func declareTaskQueue(_ name: String) async throws {
        let hook = state.withLock { state in
            defer { state.beforeDeclaring = nil }
            return state.beforeDeclaring
        }
        await hook?()
        try await inner.declareTaskQueue(name)
    }

    func consume(queues: [String], prefetch: Int) async throws -> AsyncThrowingStream<Delivery, any Error> {
        try await inner.consume(queues: queues, prefetch: prefetch)
    }

    func stopConsuming() async { await inner.stopConsuming() }

    func publish(_ message: Message, to queue: String, mandatory: Bool) async throws {
        let (failure, endReplies) = state.withLock { state -> (BrokerError?, [String]) in
            state.attempts.append(message)
            if let failing = state.failing, failing(message) {
                return (BrokerError(.connectionLost, "connection lost (test)"), [])
            }
            guard !state.failures.isEmpty else { return (nil, []) }
            let next = state.failures.removeFirst()
            return (BrokerError(next.code, "\(next.code) (test)"), next.endingReplyQueues ? Array(state.relays.keys) : [])
        }
        for name in endReplies { endReplyQueue(name) }
        if let failure { throw failure }
        try await inner.publish(message, to: queue, mandatory: mandatory)
    }

    func acknowledge(_ delivery: Delivery) async throws { try await inner.acknowledge(delivery) }

    func reject(_ delivery: Delivery, requeue: Bool) async throws { try await inner.reject(delivery, requeue: requeue) }

    func makeReplyQueue() async throws -> ReplyQueue {
        let queue = try await inner.makeReplyQueue()
        let (stream, continuation) = AsyncThrowingStream.makeStream(of: Message.self, throwing: (any Error).self)
        let relay = Task {
            do {
                for try await message in queue.messages { continuation.yield(message) }
                continuation.finish()
            } catch {
                continuation.finish(throwing: error)
            }
        }
        state.withLock { state in
            state.relays[queue.name] = ReplyRelay(continuation: continuation, relay: relay)
            state.replyQueuesMade += 1
        }
        return ReplyQueue(name: queue.name, messages: stream)
    }

    func close() async { await inner.close() }
}
