@testable import AMQP
import Testing

/// Which channel closes get no `close-ok` (RabbitMQ answers the one after
/// a consumer_timeout close with `504 CHANNEL_ERROR`, closing the
/// connection): only RabbitMQ's consumer_timeout close.
@Suite struct ConsumerTimeoutCloseTests {
    @Test func onlyTheConsumerTimeoutCloseIsRecognised() {
        let timeout = AMQPError(
            .channelClosed, "the broker closed channel 2", replyCode: 406,
            replyText: "PRECONDITION_FAILED - delivery acknowledgement on channel 2 timed out. Timeout value used: 10000 ms. This timeout value can be configured, see consumers doc guide to learn more")
        #expect(ConnectionCore.isConsumerTimeoutClose(timeout))
        let unknownTag = AMQPError(.channelClosed, "x", replyCode: 406, replyText: "PRECONDITION_FAILED - unknown delivery tag 7")
        #expect(!ConnectionCore.isConsumerTimeoutClose(unknownTag))
        let notFound = AMQPError(.channelClosed, "x", replyCode: 404, replyText: "NOT_FOUND - no queue 'q' in vhost '/'")
        #expect(!ConnectionCore.isConsumerTimeoutClose(notFound))
        #expect(!ConnectionCore.isConsumerTimeoutClose(AMQPError(.channelClosed, "closed by this process")))
    }
}
