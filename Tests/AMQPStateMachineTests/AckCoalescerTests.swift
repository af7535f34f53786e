@testable import AMQP
import Testing

@Suite struct AckCoalescerTests {
    private func coalescer(delivered tags: ClosedRange<UInt64>) -> AckCoalescer {
        var coalescer = AckCoalescer()
        for tag in tags { coalescer.delivered(tag) }
        return coalescer
    }

    @Test func inOrderAcksBecomeOneMultipleAck() {
        var acks = coalescer(delivered: 1...5)
        for tag in 1...4 as ClosedRange<UInt64> { do { let accepted = acks.ack(tag); #expect(accepted) } }
        do { let frames = acks.flush(); #expect(frames == [.init(tag: 4, multiple: true)]) }
        #expect(acks.outstandingCount == 1)
    }

    @Test func aSingleAckStaysSingle() {
        var acks = coalescer(delivered: 1...3)
        do { let accepted = acks.ack(1); #expect(accepted) }
        do { let frames = acks.flush(); #expect(frames == [.init(tag: 1, multiple: false)]) }
    }

    @Test func acksBehindAnUnfinishedDeliveryGoOutSinglyAtOnce() {
        var acks = coalescer(delivered: 1...5)
        do { let accepted = acks.ack(3); #expect(accepted) }
        do { let accepted = acks.ack(4); #expect(accepted) }
        // Tag 1 is still running: a multiple ack up to 4 would settle it.
        do { let frames = acks.flush(); #expect(frames == [.init(tag: 3, multiple: false), .init(tag: 4, multiple: false)]) }
        // Once 1 and 2 are acked, the run passes over 3 and 4 (already sent).
        do { let accepted = acks.ack(1); #expect(accepted) }
        do { let accepted = acks.ack(2); #expect(accepted) }
        do { let frames = acks.flush(); #expect(frames == [.init(tag: 2, multiple: true)]) }
        #expect(acks.outstandingCount == 1)
        do { let accepted = acks.ack(5); #expect(accepted) }
        do { let frames = acks.flush(); #expect(frames == [.init(tag: 5, multiple: false)]) }
        #expect(acks.outstandingCount == 0)
    }

    @Test func rejectedTagsInsideARunAreSkipped() {
        var acks = coalescer(delivered: 1...4)
        acks.settledDirectly(2, multiple: false)
        do { let accepted = acks.ack(1); #expect(accepted) }
        do { let accepted = acks.ack(3); #expect(accepted) }
        // A multiple ack up to 3 leaves 2 alone: the broker no longer counts it.
        do { let frames = acks.flush(); #expect(frames == [.init(tag: 3, multiple: true)]) }
        #expect(acks.outstandingCount == 1)
    }

    @Test func unknownAndRepeatedTagsAreLeftToTheCaller() {
        var acks = coalescer(delivered: 1...2)
        do { let accepted = acks.ack(9); #expect(!accepted) }
        do { let accepted = acks.ack(1); #expect(accepted) }
        do { let accepted = acks.ack(1); #expect(!accepted) }
        _ = acks.flush()
        do { let accepted = acks.ack(1); #expect(!accepted) }
    }

    @Test func aDirectMultipleAckSettlesEverythingUpToIt() {
        var acks = coalescer(delivered: 1...6)
        do { let accepted = acks.ack(5); #expect(accepted) }
        acks.settledDirectly(4, multiple: true)
        do { let frames = acks.flush(); #expect(frames == [.init(tag: 5, multiple: false)]) }
        #expect(acks.outstandingCount == 1)
    }

    @Test func manyDeliveriesStayBounded() {
        var acks = AckCoalescer()
        for tag in 1...100_000 as ClosedRange<UInt64> {
            acks.delivered(tag)
            do { let accepted = acks.ack(tag); #expect(accepted) }
            if tag % 50 == 0 { #expect(acks.flush() == [.init(tag: tag, multiple: true)]) }
        }
        #expect(acks.outstandingCount == 0)
    }
}
