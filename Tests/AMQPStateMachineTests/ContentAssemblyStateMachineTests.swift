@testable import AMQP
import Testing

/// Content frames (header, then body frames) assembled per channel, as
/// values: interleaving, split bodies, empty bodies, framing errors.
@Suite struct ContentAssemblyStateMachineTests {
    typealias Machine = ContentAssemblyStateMachine

    private func deliver(_ tag: UInt64, consumer: String = "c1") -> IncomingContent.Purpose {
        .deliver(consumerTag: consumer, deliveryTag: tag, redelivered: false, exchange: "", routingKey: "q")
    }

    /// The action's completed content, if it completed one.
    private func completed(_ action: Machine.FrameAction) -> IncomingContent? {
        if case .complete(let content, _) = action { return content }
        return nil
    }

    private func isProtocolError(_ action: Machine.FrameAction) -> Bool {
        if case .protocolError = action { return true }
        return false
    }

    @Test func interleavedFramesOfTwoChannelsAssembleSeparately() {
        var machine = Machine()
        #expect(machine.contentMethodReceived(on: 1, deliver(7), limit: nil) == .none)
        #expect(machine.contentMethodReceived(on: 2, deliver(9, consumer: "c2"), limit: nil) == .none)
        #expect(machine.headerReceived(on: 1, bodySize: 6, properties: AMQPProperties(messageID: "one")) == .awaitBody(recycleBuffers: false))
        #expect(machine.headerReceived(on: 2, bodySize: 4, properties: AMQPProperties(messageID: "two")) == .awaitBody(recycleBuffers: false))
        #expect(machine.body(on: 1, "abc") == .awaitBody(recycleBuffers: false))
        let two = completed(machine.body(on: 2, "wxyz"))
        #expect(two?.body == Array("wxyz".utf8))
        #expect(two?.purpose == deliver(9, consumer: "c2"))
        #expect(two?.properties?.messageID == "two")
        #expect(machine.isAssembling(on: 1))
        #expect(!machine.isAssembling(on: 2))
        let one = completed(machine.body(on: 1, "def"))
        #expect(one?.body == Array("abcdef".utf8))
        #expect(one?.purpose == deliver(7))
        #expect(one?.properties?.messageID == "one")
        #expect(!machine.isAssembling(on: 1))
    }

    @Test func aBodySplitAcrossManyFramesIsJoinedInOrder() {
        var machine = Machine()
        _ = machine.contentMethodReceived(on: 3, deliver(1), limit: nil)
        let body = (0..<1000).map { UInt8(truncatingIfNeeded: $0 &* 7) }
        _ = machine.headerReceived(on: 3, bodySize: UInt64(body.count), properties: AMQPProperties())
        var last: Machine.FrameAction?
        for start in stride(from: 0, to: body.count, by: 128) {
            last = body[start..<min(start + 128, body.count)].withUnsafeBytes { machine.bodyReceived(on: 3, $0) }
        }
        let content = last.flatMap(completed)
        #expect(content?.body == body)
        #expect(content?.bodySize == 1000)
        #expect(content?.discard == false)
    }

    @Test func aZeroLengthBodyIsCompleteWithItsHeader() {
        var machine = Machine()
        _ = machine.contentMethodReceived(on: 1, deliver(1), limit: nil)
        let content = completed(machine.headerReceived(on: 1, bodySize: 0, properties: AMQPProperties(type: "empty")))
        #expect(content?.body == [])
        #expect(content?.properties?.type == "empty")
        // No body frame is due: one now breaks the framing.
        #expect(isProtocolError(machine.body(on: 1, "x")))
    }

    @Test func aBodyOverTheLimitIsReadAndDropped() {
        var machine = Machine()
        _ = machine.contentMethodReceived(on: 1, deliver(1), limit: 4)
        _ = machine.headerReceived(on: 1, bodySize: 6, properties: AMQPProperties())
        _ = machine.body(on: 1, "abc")
        let content = completed(machine.body(on: 1, "def"))
        #expect(content?.discard == true)
        #expect(content?.body == [])
        #expect(content?.bodySize == 6)
    }

    @Test func aLargeBodyAsksForItsFramesToBeRecycled() {
        var machine = Machine()
        _ = machine.contentMethodReceived(on: 1, deliver(1), limit: nil)
        let size = Int(Machine.recycleThreshold) + 10
        _ = machine.headerReceived(on: 1, bodySize: UInt64(size), properties: AMQPProperties())
        let half = [UInt8](repeating: 1, count: size / 2)
        #expect(half.withUnsafeBytes { machine.bodyReceived(on: 1, $0) } == .awaitBody(recycleBuffers: true))
        guard case .complete(_, let recycle) = half.withUnsafeBytes({ machine.bodyReceived(on: 1, $0) }) else {
            Issue.record("the second half did not complete the body")
            return
        }
        #expect(recycle)
    }

    @Test func framesOutOfPlaceAreProtocolErrors() {
        var machine = Machine()
        // Header or body with no method before it.
        #expect(isProtocolError(machine.headerReceived(on: 1, bodySize: 1, properties: AMQPProperties())))
        #expect(isProtocolError(machine.body(on: 1, "a")))
        // Body before the header.
        _ = machine.contentMethodReceived(on: 1, deliver(1), limit: nil)
        #expect(isProtocolError(machine.body(on: 1, "a")))
        // A second header.
        _ = machine.contentMethodReceived(on: 2, deliver(2), limit: nil)
        _ = machine.headerReceived(on: 2, bodySize: 2, properties: AMQPProperties())
        #expect(isProtocolError(machine.headerReceived(on: 2, bodySize: 2, properties: AMQPProperties())))
        // More body than announced.
        _ = machine.contentMethodReceived(on: 3, deliver(3), limit: nil)
        _ = machine.headerReceived(on: 3, bodySize: 2, properties: AMQPProperties())
        #expect(isProtocolError(machine.body(on: 3, "abc")))
        // A size no array can hold.
        _ = machine.contentMethodReceived(on: 4, deliver(4), limit: nil)
        #expect(isProtocolError(machine.headerReceived(on: 4, bodySize: .max, properties: AMQPProperties())))
    }

    @Test func aNewMethodDropsAnUnfinishedMessage() {
        var machine = Machine()
        _ = machine.contentMethodReceived(on: 1, deliver(1), limit: nil)
        _ = machine.headerReceived(on: 1, bodySize: 4, properties: AMQPProperties())
        _ = machine.body(on: 1, "ab")
        #expect(machine.contentMethodReceived(on: 1, deliver(2), limit: nil) == .droppedUnfinished(deliver(1)))
        _ = machine.headerReceived(on: 1, bodySize: 1, properties: AMQPProperties())
        #expect(completed(machine.body(on: 1, "z"))?.purpose == deliver(2))
    }

    @Test func aClosedChannelForgetsItsContent() {
        var machine = Machine()
        _ = machine.contentMethodReceived(on: 1, deliver(1), limit: nil)
        _ = machine.contentMethodReceived(on: 2, deliver(2), limit: nil)
        machine.channelClosed(1)
        #expect(!machine.isAssembling(on: 1))
        #expect(machine.isAssembling(on: 2))
        #expect(isProtocolError(machine.headerReceived(on: 1, bodySize: 1, properties: AMQPProperties())))
    }
}

extension ContentAssemblyStateMachine {
    /// A body frame carrying `text`'s UTF-8 bytes.
    mutating func body(on channel: UInt16, _ text: String) -> FrameAction {
        Array(text.utf8).withUnsafeBytes { bodyReceived(on: channel, $0) }
    }
}
