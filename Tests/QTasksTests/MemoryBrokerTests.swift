import QTasks
import Testing

@Suite struct MemoryBrokerTests {
    func message(_ text: String) -> Message {
        Message(body: Array(text.utf8))
    }

    @Test func prefetchBoundsUnacknowledgedDeliveries() async throws {
        let broker = MemoryBroker()
        try await broker.declareTaskQueue("q")
        for index in 0..<5 { try await broker.publish(message("\(index)"), to: "q", mandatory: true) }
        let stream = try await broker.consume(queues: ["q"], prefetch: 2)
        var iterator = stream.makeAsyncIterator()
        let first = try #require(try await iterator.next())
        let second = try #require(try await iterator.next())
        #expect(first.message.body == Array("0".utf8))
        #expect(second.message.body == Array("1".utf8))
        #expect(broker.unackedCount == 2)
        #expect(broker.readyCount(in: "q") == 3)
        try await broker.acknowledge(first)
        let third = try #require(try await iterator.next())
        #expect(third.message.body == Array("2".utf8))
        #expect(broker.unackedCount == 2)
        #expect(broker.readyCount(in: "q") == 2)
        await broker.close()
    }

    @Test func rejectWithRequeueRedeliversFirst() async throws {
        let broker = MemoryBroker()
        try await broker.declareTaskQueue("q")
        try await broker.publish(message("a"), to: "q", mandatory: true)
        try await broker.publish(message("b"), to: "q", mandatory: true)
        let stream = try await broker.consume(queues: ["q"], prefetch: 1)
        var iterator = stream.makeAsyncIterator()
        let first = try #require(try await iterator.next())
        #expect(!first.redelivered)
        try await broker.reject(first, requeue: true)
        let again = try #require(try await iterator.next())
        #expect(again.message.body == Array("a".utf8))
        #expect(again.redelivered)
        try await broker.reject(again, requeue: false)
        let next = try #require(try await iterator.next())
        #expect(next.message.body == Array("b".utf8))
        try await broker.acknowledge(next)
        #expect(broker.unackedCount == 0)
        #expect(broker.readyCount(in: "q") == 0)
        await #expect(throws: BrokerError.self) { try await broker.acknowledge(next) }
        await broker.close()
    }

    @Test func mandatoryPublishToMissingQueueIsUnroutable() async throws {
        let broker = MemoryBroker()
        let error = await #expect(throws: BrokerError.self) {
            try await broker.publish(message("x"), to: "missing", mandatory: true)
        }
        #expect(error?.code == .unroutable)
        try await broker.publish(message("x"), to: "missing", mandatory: false)
        #expect(broker.publishedCount == 0)
    }

    @Test func closeReturnsUnacknowledgedDeliveries() async throws {
        let broker = MemoryBroker()
        try await broker.declareTaskQueue("q")
        for index in 0..<3 { try await broker.publish(message("\(index)"), to: "q", mandatory: true) }
        let stream = try await broker.consume(queues: ["q"], prefetch: 10)
        var iterator = stream.makeAsyncIterator()
        _ = try await iterator.next()
        _ = try await iterator.next()
        await broker.close()
        let ready = broker.messages(in: "q")
        #expect(ready.map { String(decoding: $0.body, as: UTF8.self) } == ["0", "1", "2"])
        #expect(broker.unackedCount == 0)
        await #expect(throws: BrokerError.self) { try await broker.publish(message("x"), to: "q", mandatory: true) }
    }

    @Test func stopConsumingFinishesTheStreamAfterBufferedDeliveries() async throws {
        let broker = MemoryBroker()
        try await broker.declareTaskQueue("q")
        for index in 0..<3 { try await broker.publish(message("\(index)"), to: "q", mandatory: true) }
        let stream = try await broker.consume(queues: ["q"], prefetch: 2)
        await broker.stopConsuming()
        var received: [Delivery] = []
        for try await delivery in stream { received.append(delivery) }
        #expect(received.count == 2)
        #expect(broker.readyCount(in: "q") == 1)
        for delivery in received { try await broker.acknowledge(delivery) }
        #expect(broker.readyCount(in: "q") == 1, "a stopped consumer gets nothing new")
        await broker.close()
    }

    @Test func replyQueueDeliversPublishedMessages() async throws {
        let broker = MemoryBroker()
        let reply = try await broker.makeReplyQueue()
        try await broker.publish(message("r"), to: reply.name, mandatory: true)
        var iterator = reply.messages.makeAsyncIterator()
        #expect(try await iterator.next()?.body == Array("r".utf8))
        await broker.close()
        #expect(try await iterator.next() == nil)
    }

    @Test func consumingAMissingQueueIsRefused() async throws {
        let broker = MemoryBroker()
        let error = await #expect(throws: BrokerError.self) { _ = try await broker.consume(queues: ["nope"], prefetch: 1) }
        #expect(error?.code == .refused)
    }
}
