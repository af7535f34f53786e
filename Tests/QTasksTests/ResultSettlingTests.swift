import QTasks
import Synchronization
import Testing

/// A task with nothing to send but its result is settled without holding
/// its concurrency slot: the delivery is acknowledged when the result's
/// confirm arrives (`Broker.publish(_:to:mandatory:thenAcknowledge:completion:)`).
@Suite struct ResultSettlingTests {
    func makeApp() throws -> TaskApp {
        let app = TaskApp(name: "settling-test")
        try app.register("add", parameters: ["a", "b"]) { (a: Int, b: Int) in a + b }
        return app
    }

    func send(_ count: Int, to broker: MemoryBroker) async throws {
        broker.declareQueue("replies")
        for index in 0..<count {
            let body = Array(#"{"task_name":"add","uuid":"t\#(index)","args":[\#(index),1]}"#.utf8)
            try await broker.publish(
                Message(body: body, properties: MessageProperties(correlationID: "t\(index)", replyTo: "replies")),
                to: "default", mandatory: true)
        }
    }

    @Test func theSlotIsFreedBeforeTheConfirmAndTheAckWaitsForIt() async throws {
        let broker = ConfirmHoldingBroker()
        let worker = Worker(broker: broker, app: try makeApp(), configuration: quietConfiguration(concurrency: 1))
        try await broker.inner.declareTaskQueue("default")
        try await send(3, to: broker.inner)
        let running = Task { try await worker.run() }
        // One slot, three confirms held: all three ran all the same.
        #expect(await eventually { broker.heldCount == 3 })
        #expect(broker.inner.messages(in: "replies").count == 3)
        #expect(broker.inner.unackedCount == 3, "no ack before its confirm")
        broker.releaseAll()
        #expect(await eventually { broker.inner.unackedCount == 0 })
        worker.triggerGracefulShutdown()
        try await running.value
        #expect(broker.inner.readyCount(in: "default") == 0)
        await broker.close()
    }

    @Test func aGracefulShutdownWaitsForTheConfirmsOfPublishedResults() async throws {
        let broker = ConfirmHoldingBroker()
        let worker = Worker(broker: broker, app: try makeApp(), configuration: quietConfiguration())
        try await broker.inner.declareTaskQueue("default")
        try await send(2, to: broker.inner)
        let finished = Mutex(false)
        let running = Task {
            try await worker.run()
            finished.withLock { $0 = true }
        }
        #expect(await eventually { broker.heldCount == 2 })
        worker.triggerGracefulShutdown()
        // The run goes on while a confirm is held; a closed connection
        // would hand the delivery back and the task would run twice.
        #expect(await eventually(timeout: .seconds(1)) { finished.withLock { $0 } } == false)
        broker.releaseAll()
        try await running.value
        #expect(broker.inner.unackedCount == 0)
        #expect(broker.inner.readyCount(in: "default") == 0, "acked, not handed back")
        #expect(broker.inner.messages(in: "replies").count == 2)
        await broker.close()
    }

    /// A confirm that never comes (a broker blocking publishes for a
    /// resource alarm) does not hold the shutdown for ever: the run ends
    /// after the grace period (5 s at least), the delivery unacked, and
    /// closing the connection hands it back.
    @Test func aConfirmThatNeverComesDoesNotHoldTheShutdownForEver() async throws {
        let broker = ConfirmHoldingBroker()
        let worker = Worker(broker: broker, app: try makeApp(), configuration: quietConfiguration(shutdownGracePeriod: .seconds(1)))
        try await broker.inner.declareTaskQueue("default")
        try await send(1, to: broker.inner)
        let running = Task { try await worker.run() }
        #expect(await eventually { broker.heldCount == 1 })
        worker.triggerGracefulShutdown()
        try await running.value
        #expect(broker.inner.unackedCount == 1, "never acked without its confirm")
        await broker.close()
        #expect(broker.inner.readyCount(in: "default") == 1, "back in its queue")
    }

    @Test func aResultWhosePublishFailsIsSentAgainTheSlowWayThenAcked() async throws {
        let broker = ConfirmHoldingBroker()
        broker.failNext = BrokerError(.nacked, "test: nack")
        try await broker.inner.declareTaskQueue("default")
        let worker = Worker(broker: broker, app: try makeApp(), configuration: quietConfiguration())
        try await send(1, to: broker.inner)
        let running = Task { try await worker.run() }
        // The nacked reply never reached the queue; the slow path's did.
        #expect(await eventually { broker.inner.messages(in: "replies").count == 1 && broker.inner.unackedCount == 0 })
        #expect(broker.fastAttempts == 1)
        worker.triggerGracefulShutdown()
        try await running.value
        #expect(broker.inner.readyCount(in: "default") == 0)
        #expect(broker.inner.messages(in: "replies").count == 1)
        await broker.close()
    }
}

/// A ``Broker`` over a ``MemoryBroker`` (`inner`) whose fast result path
/// publishes at once but holds each confirm (and so its ack) until
/// ``releaseAll()``, like a slow broker; or fails the next one.
final class ConfirmHoldingBroker: Broker {
    let inner = MemoryBroker()

    private struct State {
        var held: [@Sendable () -> Void] = []
        var failNext: BrokerError?
        var fastAttempts = 0
    }

    private let state = Mutex(State())

    var heldCount: Int { state.withLock { $0.held.count } }
    var fastAttempts: Int { state.withLock { $0.fastAttempts } }
    var failNext: BrokerError? {
        get { state.withLock { $0.failNext } }
        set { state.withLock { $0.failNext = newValue } }
    }

    func releaseAll() {
        let held = state.withLock { state in
            defer { state.held = [] }
            return state.held
        }
        for confirm in held { confirm() }
    }

    func publish(
        _ message: Message, to queue: String, mandatory: Bool, thenAcknowledge delivery: Delivery,
        completion: @escaping @Sendable (ConfirmedAcknowledgement) -> Void
    ) async {
        let failure = state.withLock { state in
            state.fastAttempts += 1
            defer { state.failNext = nil }
            return state.failNext
        }
        if let failure {
            completion(.publishFailed(failure))
            return
        }
        do {
            try await inner.publish(message, to: queue, mandatory: mandatory)
        } catch {
            completion(.publishFailed(error))
            return
        }
        let inner = self.inner
        state.withLock { state in
            state.held.append {
                Task {
                    do {
                        try await inner.acknowledge(delivery)
                        completion(.acknowledged)
                    } catch {
                        completion(.acknowledgementFailed(error))
                    }
                }
            }
        }
    }

    func declareTaskQueue(_ name: String) async throws { try await inner.declareTaskQueue(name) }
    func consume(queues: [String], prefetch: Int) async throws -> AsyncThrowingStream<Delivery, any Error> {
        try await inner.consume(queues: queues, prefetch: prefetch)
    }
    func stopConsuming() async { await inner.stopConsuming() }
    func publish(batch publications: [Publication]) async throws -> [Result<Void, any Error>] {
        try await inner.publish(batch: publications)
    }
    func publish(_ message: Message, to queue: String, mandatory: Bool) async throws {
        try await inner.publish(message, to: queue, mandatory: mandatory)
    }
    func acknowledge(_ delivery: Delivery) async throws { try await inner.acknowledge(delivery) }
    func reject(_ delivery: Delivery, requeue: Bool) async throws { try await inner.reject(delivery, requeue: requeue) }
    func makeReplyQueue() async throws -> ReplyQueue { try await inner.makeReplyQueue() }
    func close() async { await inner.close() }
}
