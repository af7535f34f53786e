@testable import AMQP
import Testing

/// The publisher-confirm window and `basic.return` pairing, as values: the
/// orders of events a broker can produce, without a broker.
@Suite struct PublisherConfirmStateMachineTests {
    typealias Machine = PublisherConfirmStateMachine

    /// A machine in confirm mode with `ids` written (sequence numbers 1...).
    private func confirming(window: Int = 1024, sent ids: [UInt64] = [], mandatory: [UInt64: Machine.ReturnKey] = [:])
        -> Machine
    {
        var machine = Machine()
        machine.confirmSelected(window: window)
        for id in ids {
            #expect(machine.publishRequested(id) == .send)
            _ = machine.sent(id, returnKey: mandatory[id])
        }
        return machine
    }

    private func key(_ routingKey: String, size: UInt64 = 1, exchange: String = "", messageID: String? = nil)
        -> Machine.ReturnKey
    {
        .init(exchange: exchange, routingKey: routingKey, bodySize: size, properties: AMQPProperties(messageID: messageID))
    }

    private func settled(_ pairs: [(UInt64, Machine.Outcome)]) -> [Machine.Settlement] {
        pairs.map { Machine.Settlement(id: $0.0, outcome: $0.1) }
    }

    // MARK: Without confirms

    @Test func withoutConfirmModeAPublishIsDoneOnceWritten() {
        var machine = Machine()
        #expect(machine.publishRequested(1) == .send)
        #expect(machine.sent(1, returnKey: nil) == .succeed)
        #expect(machine.unconfirmedCount == 0)
        #expect(machine.ackReceived(deliveryTag: 1, multiple: false) == [])
    }

    @Test func withoutConfirmModeAReturnIsUnpaired() {
        var machine = Machine()
        _ = machine.publishRequested(1)
        _ = machine.sent(1, returnKey: key("nowhere"))
        #expect(machine.returnReceived(.init(replyCode: 312, replyText: "NO_ROUTE", message: key("nowhere"))) == .unpaired)
    }

    // MARK: Sequence numbers and confirms

    @Test func writtenPublishesAreNumberedFromOne() {
        var machine = confirming()
        #expect(machine.publishRequested(10) == .send)
        #expect(machine.sent(10, returnKey: nil) == .awaitConfirm(sequence: 1))
        #expect(machine.publishRequested(11) == .send)
        #expect(machine.sent(11, returnKey: nil) == .awaitConfirm(sequence: 2))
    }

    @Test func aPublishThatFailedToWriteTakesNoSequenceNumber() {
        var machine = confirming(window: 1)
        #expect(machine.publishRequested(1) == .send)
        machine.sendFailed(1)
        // Its slot in the window is free again, and the broker never saw it.
        #expect(machine.publishRequested(2) == .send)
        #expect(machine.sent(2, returnKey: nil) == .awaitConfirm(sequence: 1))
    }

    @Test func aSingleAckSettlesOnePublish() {
        var machine = confirming(sent: [1, 2, 3])
        #expect(machine.ackReceived(deliveryTag: 1, multiple: false) == settled([(1, .confirmed)]))
        #expect(machine.unconfirmedCount == 2)
    }

    @Test func aMultipleAckSettlesEveryPublishUpToItsTag() {
        var machine = confirming(sent: [1, 2, 3, 4])
        #expect(machine.ackReceived(deliveryTag: 3, multiple: true) == settled([(1, .confirmed), (2, .confirmed), (3, .confirmed)]))
        #expect(machine.unconfirmedCount == 1)
        #expect(machine.ackReceived(deliveryTag: 4, multiple: true) == settled([(4, .confirmed)]))
        #expect(machine.unconfirmedCount == 0)
    }

    @Test func outOfOrderConfirmsSettleTheRightPublishes() {
        // Ids differ from sequence numbers on purpose: the machine maps one
        // to the other.
        var machine = confirming(sent: [101, 102, 103, 104, 105])
        #expect(machine.ackReceived(deliveryTag: 3, multiple: false) == settled([(103, .confirmed)]))
        #expect(machine.ackReceived(deliveryTag: 5, multiple: false) == settled([(105, .confirmed)]))
        #expect(machine.ackReceived(deliveryTag: 1, multiple: false) == settled([(101, .confirmed)]))
        // A multiple ack passes over the gaps the single ones left.
        #expect(machine.ackReceived(deliveryTag: 4, multiple: true) == settled([(102, .confirmed), (104, .confirmed)]))
        #expect(machine.unconfirmedCount == 0)
    }

    @Test func repeatedAndUnknownTagsSettleNothing() {
        var machine = confirming(sent: [1, 2])
        _ = machine.ackReceived(deliveryTag: 1, multiple: false)
        #expect(machine.ackReceived(deliveryTag: 1, multiple: false) == [])
        #expect(machine.ackReceived(deliveryTag: 9, multiple: false) == [])
        #expect(machine.nackReceived(deliveryTag: 1, multiple: true) == [])
        #expect(machine.unconfirmedCount == 1)
    }

    @Test func aNackFailsOnlyThePublishesItNames() {
        var machine = confirming(sent: [1, 2, 3, 4])
        #expect(machine.nackReceived(deliveryTag: 2, multiple: false) == settled([(2, .nacked)]))
        #expect(machine.ackReceived(deliveryTag: 1, multiple: false) == settled([(1, .confirmed)]))
        #expect(machine.nackReceived(deliveryTag: 4, multiple: true) == settled([(3, .nacked), (4, .nacked)]))
    }

    // MARK: basic.return

    @Test func aReturnBeforeItsAckEndsThePublishAsReturned() {
        var machine = confirming(sent: [1, 2], mandatory: [1: key("q"), 2: key("nowhere")])
        #expect(
            machine.returnReceived(.init(replyCode: 312, replyText: "NO_ROUTE", message: key("nowhere")))
                == .paired(sequence: 2))
        #expect(machine.ackReceived(deliveryTag: 2, multiple: false) == settled([(2, .returned(replyCode: 312, replyText: "NO_ROUTE"))]))
        #expect(machine.ackReceived(deliveryTag: 1, multiple: false) == settled([(1, .confirmed)]))
    }

    /// RabbitMQ coalesces confirms: the ack after a return may be a
    /// `multiple` one naming a later publish. The returned publish must still
    /// end as returned, and the later one as confirmed.
    @Test func aReturnedPublishInsideAMultipleAckIsReturned() {
        var machine = confirming(sent: [1, 2, 3], mandatory: [2: key("nowhere"), 3: key("q")])
        #expect(
            machine.returnReceived(.init(replyCode: 312, replyText: "NO_ROUTE", message: key("nowhere")))
                == .paired(sequence: 2))
        #expect(
            machine.ackReceived(deliveryTag: 3, multiple: true)
                == settled([(1, .confirmed), (2, .returned(replyCode: 312, replyText: "NO_ROUTE")), (3, .confirmed)]))
    }

    @Test func returnsPairWithMandatoryPublishesInOrder() {
        // Two returnable publishes to the same place, one not mandatory.
        var machine = confirming(sent: [1, 2, 3], mandatory: [2: key("nowhere"), 3: key("nowhere")])
        let returned = Machine.Return(replyCode: 312, replyText: "NO_ROUTE", message: key("nowhere"))
        #expect(machine.returnReceived(returned) == .paired(sequence: 2))
        #expect(machine.returnReceived(returned) == .paired(sequence: 3))
        // Nothing left to pair with.
        #expect(machine.returnReceived(returned) == .unpaired)
    }

    @Test func aReturnPairsByExchangeRoutingKeyAndSize() {
        var machine = confirming(
            sent: [1, 2, 3, 4],
            mandatory: [1: key("a", size: 5), 2: key("b", size: 5, exchange: "x"), 3: key("b", size: 7), 4: key("b", size: 5)])
        #expect(machine.returnReceived(.init(replyCode: 312, replyText: "NO_ROUTE", message: key("b", size: 5))) == .paired(sequence: 4))
        #expect(machine.returnReceived(.init(replyCode: 312, replyText: "NO_ROUTE", message: key("c"))) == .unpaired)
    }

    @Test func matchingPropertiesBreakATie() {
        var machine = confirming(
            sent: [1, 2], mandatory: [1: key("q", messageID: "first"), 2: key("q", messageID: "second")])
        #expect(
            machine.returnReceived(.init(replyCode: 312, replyText: "NO_ROUTE", message: key("q", messageID: "second")))
                == .paired(sequence: 2))
        // Properties the broker re-encoded still pair, with the oldest.
        #expect(
            machine.returnReceived(.init(replyCode: 312, replyText: "NO_ROUTE", message: key("q", messageID: "other")))
                == .paired(sequence: 1))
    }

    @Test func aNackWinsOverAReturn() {
        var machine = confirming(sent: [1], mandatory: [1: key("nowhere")])
        _ = machine.returnReceived(.init(replyCode: 312, replyText: "NO_ROUTE", message: key("nowhere")))
        #expect(machine.nackReceived(deliveryTag: 1, multiple: false) == settled([(1, .nacked)]))
    }

    // MARK: Window back-pressure

    @Test func aPublishBeyondTheWindowWaitsForRoom() {
        var machine = confirming(window: 2, sent: [1, 2])
        #expect(machine.publishRequested(3) == .hold)
        #expect(machine.publishRequested(4) == .hold)
        #expect(machine.heldCount == 2)
        #expect(machine.nextHeld() == nil)

        #expect(machine.ackReceived(deliveryTag: 1, multiple: false) == settled([(1, .confirmed)]))
        #expect(machine.nextHeld() == 3)
        // Only one slot freed.
        #expect(machine.nextHeld() == nil)
        #expect(machine.sent(3, returnKey: nil) == .awaitConfirm(sequence: 3))

        _ = machine.ackReceived(deliveryTag: 3, multiple: true)
        #expect(machine.nextHeld() == 4)
        #expect(machine.sent(4, returnKey: nil) == .awaitConfirm(sequence: 4))
        #expect(machine.heldCount == 0)
    }

    @Test func aPublishBeingWrittenCountsAgainstTheWindow() {
        var machine = confirming(window: 1)
        #expect(machine.publishRequested(1) == .send)
        // 1 is not reported sent yet, but it holds the only slot.
        #expect(machine.publishRequested(2) == .hold)
        _ = machine.sent(1, returnKey: nil)
        #expect(machine.nextHeld() == nil)
    }

    @Test func aNewPublishNeverOvertakesHeldOnes() {
        var machine = confirming(window: 1, sent: [1])
        #expect(machine.publishRequested(2) == .hold)
        _ = machine.ackReceived(deliveryTag: 1, multiple: false)
        // There is room now, but 2 is still held: 3 queues behind it.
        #expect(machine.publishRequested(3) == .hold)
        #expect(machine.nextHeld() == 2)
    }

    @Test func aBlockedConnectionHoldsEveryPublishUntilUnblocked() {
        var machine = Machine()
        machine.connectionBlocked()
        #expect(machine.publishRequested(1) == .hold)
        #expect(machine.publishRequested(2) == .hold)
        #expect(machine.nextHeld() == nil)
        machine.connectionUnblocked()
        #expect(machine.nextHeld() == 1)
        #expect(machine.sent(1, returnKey: nil) == .succeed)
        #expect(machine.nextHeld() == 2)
        #expect(machine.sent(2, returnKey: nil) == .succeed)
        #expect(machine.nextHeld() == nil)
    }

    @Test func manyPublishesThroughASmallWindowStayBounded() {
        var machine = confirming(window: 8)
        var writtenBySequence: [UInt64: UInt64] = [:]
        var confirmed: [UInt64] = []
        var next: UInt64 = 1
        for id in 1...10_000 as ClosedRange<UInt64> {
            if machine.publishRequested(id) == .send, case .awaitConfirm(let sequence) = machine.sent(id, returnKey: nil) {
                writtenBySequence[sequence] = id
            }
            #expect(machine.unconfirmedCount <= 8)
            if id % 4 == 0 {
                // Confirm everything written so far, in one multiple ack.
                confirmed += machine.ackReceived(deliveryTag: UInt64(writtenBySequence.count), multiple: true).map(\.id)
                while let held = machine.nextHeld() {
                    if case .awaitConfirm(let sequence) = machine.sent(held, returnKey: nil) { writtenBySequence[sequence] = held }
                }
            }
            next = id
        }
        confirmed += machine.ackReceived(deliveryTag: UInt64(writtenBySequence.count), multiple: true).map(\.id)
        while let held = machine.nextHeld() {
            if case .awaitConfirm(let sequence) = machine.sent(held, returnKey: nil) { writtenBySequence[sequence] = held }
            confirmed += machine.ackReceived(deliveryTag: UInt64(writtenBySequence.count), multiple: true).map(\.id)
        }
        // Every publish confirmed once, in the order they were requested.
        #expect(confirmed == Array(1...next))
        #expect(machine.unconfirmedCount == 0 && machine.heldCount == 0)
    }

    // MARK: Failure

    @Test func channelFailureFailsEverythingOutstandingAndWaiting() {
        var machine = confirming(window: 3, sent: [1, 2, 3])
        _ = machine.ackReceived(deliveryTag: 2, multiple: false)
        #expect(machine.publishRequested(4) == .send)
        _ = machine.sent(4, returnKey: nil)
        #expect(machine.publishRequested(5) == .hold)
        #expect(machine.publishRequested(6) == .hold)
        // Oldest first: unconfirmed (with the gap 2 left), then held.
        #expect(machine.channelFailed() == [1, 3, 4, 5, 6])
        #expect(machine.unconfirmedCount == 0 && machine.heldCount == 0)
        // Nothing is sent or settled afterwards.
        #expect(machine.publishRequested(7) == .fail)
        #expect(machine.nextHeld() == nil)
        #expect(machine.ackReceived(deliveryTag: 4, multiple: true) == [])
    }
}
