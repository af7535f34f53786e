@testable import AMQP
import Testing

/// The two machines together, in the order the owner thread feeds them: a
/// mandatory publish that matches no queue comes back as `basic.return` with
/// its content (method, header, body frames, possibly between another
/// channel's frames) before the `basic.ack` that confirms it.
@Suite struct ReturnedPublishTests {
    @Test func aReturnAssembledFromFramesEndsItsPublishAsReturned() {
        var frames = ContentAssemblyStateMachine()
        var confirms = PublisherConfirmStateMachine()
        confirms.confirmSelected(window: 16)
        let properties = AMQPProperties(contentType: "application/json", messageID: "m-2")
        let published: [(id: UInt64, routingKey: String, body: String)] = [
            (1, "tasks", "{\"a\":1}"), (2, "no-such-queue", "{\"b\":22}"), (3, "tasks", "{\"c\":333}"),
        ]
        for message in published {
            #expect(confirms.publishRequested(message.id) == .send)
            let key = PublisherConfirmStateMachine.ReturnKey(
                exchange: "", routingKey: message.routingKey, bodySize: UInt64(message.body.utf8.count),
                properties: properties)
            _ = confirms.sent(message.id, returnKey: key)
        }

        // basic.return on channel 1, its content split, a delivery on
        // channel 2 in between; the returned body is dropped as it arrives
        // (limit 0), only its size is kept.
        _ = frames.contentMethodReceived(
            on: 1, .returned(code: 312, text: "NO_ROUTE", exchange: "", routingKey: "no-such-queue"), limit: 0)
        _ = frames.contentMethodReceived(
            on: 2, .deliver(consumerTag: "c", deliveryTag: 1, redelivered: false, exchange: "", routingKey: "tasks"),
            limit: nil)
        _ = frames.headerReceived(on: 1, bodySize: 8, properties: properties)
        _ = frames.headerReceived(on: 2, bodySize: 2, properties: AMQPProperties())
        _ = frames.body(on: 1, "{\"b\":")
        _ = frames.body(on: 2, "ok")
        guard case .complete(let returned, _) = frames.body(on: 1, "22}"),
            case .returned(let code, let text, let exchange, let routingKey) = returned.purpose
        else {
            Issue.record("the basic.return content did not complete")
            return
        }
        #expect(returned.discard && returned.body.isEmpty)
        let pairing = confirms.returnReceived(
            .init(
                replyCode: code, replyText: text,
                message: .init(
                    exchange: exchange, routingKey: routingKey, bodySize: returned.bodySize,
                    properties: returned.properties ?? AMQPProperties())))
        #expect(pairing == .paired(sequence: 2))

        // Then one coalesced basic.ack for all three.
        #expect(
            confirms.ackReceived(deliveryTag: 3, multiple: true) == [
                .init(id: 1, outcome: .confirmed),
                .init(id: 2, outcome: .returned(replyCode: 312, replyText: "NO_ROUTE")),
                .init(id: 3, outcome: .confirmed),
            ])
    }
}
