import CRabbitMQ
import Logging

#if canImport(Glibc)
import Glibc
#endif

/// Reading from the broker: the frames rabbitmq-c has or the socket gives,
/// methods, and message content assembled frame by frame per channel. Runs
/// on the owner thread only, like everything in ``ConnectionCore``.
extension ConnectionCore {
    // MARK: Incoming frames

    /// Handles every frame rabbitmq-c already holds or the socket can give
    /// without blocking. Also where heartbeats are sent and missed ones
    /// detected, since rabbitmq-c services them only inside its calls.
    func pumpFrames() {
        var frame = amqp_frame_t()
        var zero = timeval(tv_sec: 0, tv_usec: 0)
        while isOpen {
            let status = amqp_simple_wait_frame_noblock(state, &frame, &zero)
            if status == AMQP_STATUS_TIMEOUT.rawValue { break }
            if status != AMQP_STATUS_OK.rawValue {
                let error = libraryError(status, during: "connection lost")
                logger.error("AMQP connection lost", metadata: ["error": "\(error)"])
                fail(with: error)
                break
            }
            handleFrame(frame)
        }
        amqp_maybe_release_buffers(state)
    }

    private func handleFrame(_ frame: amqp_frame_t) {
        switch frame.frame_type {
        case FrameType.method: handleMethod(frame.payload.method, channel: frame.channel)
        case FrameType.header: handleContentHeader(frame)
        case FrameType.body: handleContentBody(frame)
        default: break  // heartbeats: rabbitmq-c has noted them
        }
    }

    private func handleMethod(_ method: amqp_method_t, channel number: amqp_channel_t) {
        switch method.id {
        case MethodID.basicDeliver:
            let deliver = method.decoded.assumingMemoryBound(to: amqp_basic_deliver_t.self).pointee
            let consumerTag = CDecode.string(deliver.consumer_tag)
            expectContent(
                on: number,
                .deliver(
                    consumerTag: consumerTag, deliveryTag: deliver.delivery_tag, redelivered: deliver.redelivered != 0,
                    exchange: CDecode.string(deliver.exchange), routingKey: CDecode.string(deliver.routing_key)),
                limit: channels[number]?.consumers[consumerTag]?.maxBodySize)
        case MethodID.basicAck, MethodID.basicNack:
            let tag: UInt64
            let multiple: Bool
            if method.id == MethodID.basicAck {
                let ack = method.decoded.assumingMemoryBound(to: amqp_basic_ack_t.self).pointee
                (tag, multiple) = (ack.delivery_tag, ack.multiple != 0)
            } else {
                let nack = method.decoded.assumingMemoryBound(to: amqp_basic_nack_t.self).pointee
                (tag, multiple) = (nack.delivery_tag, nack.multiple != 0)
            }
            if let channel = channels[number] {
                confirm(tag, multiple: multiple, nacked: method.id == MethodID.basicNack, on: channel)
            }
        case MethodID.basicReturn:
            let returned = method.decoded.assumingMemoryBound(to: amqp_basic_return_t.self).pointee
            // The returned body is of no use here: dropped as it arrives
            // (its size and header are enough to pair it with its publish).
            expectContent(
                on: number,
                .returned(
                    code: returned.reply_code, text: CDecode.string(returned.reply_text),
                    exchange: CDecode.string(returned.exchange), routingKey: CDecode.string(returned.routing_key)),
                limit: 0)
        case MethodID.basicCancel:
            let cancel = method.decoded.assumingMemoryBound(to: amqp_basic_cancel_t.self).pointee
            let tag = CDecode.string(cancel.consumer_tag)
            if let consumer = channels[number]?.consumers.removeValue(forKey: tag) {
                logger.warning("consumer cancelled by broker", metadata: ["consumer_tag": "\(tag)"])
                consumer.handler(
                    .ended(
                        AMQPError(
                            .channelClosed, "the broker cancelled consumer \(tag) (its queue was deleted or failed over)")))
            }
        case MethodID.channelClose:
            let close = method.decoded.assumingMemoryBound(to: amqp_channel_close_t.self).pointee
            let error = AMQPError(
                .channelClosed, "the broker closed channel \(number)", replyCode: close.reply_code,
                replyText: CDecode.string(close.reply_text))
            acknowledgeChannelClose(number, error: error)
        case MethodID.connectionClose:
            let close = method.decoded.assumingMemoryBound(to: amqp_connection_close_t.self).pointee
            let error = AMQPError(
                .connectionClosed, "the broker closed the connection", replyCode: close.reply_code,
                replyText: CDecode.string(close.reply_text))
            var ok = amqp_connection_close_ok_t(dummy: 0)
            _ = amqp_send_method(state, 0, MethodID.connectionCloseOK, &ok)
            logger.error("AMQP connection closed by broker", metadata: ["error": "\(error)"])
            fail(with: error)
        case MethodID.connectionBlocked:
            let blocked = method.decoded.assumingMemoryBound(to: amqp_connection_blocked_t.self).pointee
            let reason = CDecode.string(blocked.reason)
            // While blocked the broker reads nothing from this connection: a
            // publish written now would stall this thread (and every ack and
            // heartbeat with it) inside rabbitmq-c's send. Hold publishes
            // until connection.unblocked.
            isBlocked = true
            for channel in channels.values { channel.confirms.connectionBlocked() }
            logger.warning(
                "broker blocked this connection (resource alarm); publishes are held", metadata: ["reason": "\(reason)"])
            blockedHandler?(reason)
        case MethodID.connectionUnblocked:
            isBlocked = false
            logger.info("broker unblocked this connection; sending held publishes")
            blockedHandler?(nil)
            for channel in channels.values {
                channel.confirms.connectionUnblocked()
                sendHeld(on: channel)
            }
        default:
            logger.debug("ignored AMQP method", metadata: ["method": "0x\(String(method.id, radix: 16))"])
        }
    }

    // MARK: Content frames

    /// Expects content frames on `channel` next, for `purpose`.
    func expectContent(on channel: amqp_channel_t, _ purpose: IncomingContent.Purpose, limit: Int?) {
        if case .droppedUnfinished = incoming.contentMethodReceived(on: channel, purpose, limit: limit) {
            logger.warning("content interrupted by a new message; dropped", metadata: ["channel": "\(channel)"])
        }
    }

    private func handleContentHeader(_ frame: amqp_frame_t) {
        let number = frame.channel
        guard let decoded = frame.payload.properties.decoded else {
            fail(with: AMQPError(.protocolError, "unexpected content header on channel \(number)"))
            return
        }
        // Copied out now: recycling the channel's pool frees the C value.
        let properties = CDecode.properties(decoded.assumingMemoryBound(to: amqp_basic_properties_t.self).pointee)
        let action = incoming.headerReceived(
            on: number, bodySize: frame.payload.properties.body_size, properties: properties)
        act(on: action, number)
    }

    private func handleContentBody(_ frame: amqp_frame_t) {
        let number = frame.channel
        let fragment = frame.payload.body_fragment
        let action = incoming.bodyReceived(
            on: number, UnsafeRawBufferPointer(start: fragment.bytes, count: fragment.len))
        act(on: action, number)
    }

    private func act(on action: ContentAssemblyStateMachine.FrameAction, _ number: amqp_channel_t) {
        switch action {
        case .awaitBody(let recycle):
            // A large body arrives in many frames, each allocated from the
            // channel's pool: recycle it frame by frame (everything still
            // needed was copied out), or the pool would grow to the body's
            // size.
            if recycle { amqp_maybe_release_buffers_on_channel(state, number) }
        case .complete(let content, let recycle):
            if recycle { amqp_maybe_release_buffers_on_channel(state, number) }
            finish(content, on: number)
        case .protocolError(let reason):
            fail(with: AMQPError(.protocolError, reason))
        }
    }

    private func finish(_ content: IncomingContent, on number: amqp_channel_t) {
        let properties = content.properties ?? AMQPProperties()
        switch content.purpose {
        case .deliver(let consumerTag, let deliveryTag, let redelivered, let exchange, let routingKey):
            guard let channel = channels[number] else { return }
            guard let consumer = channel.consumers[consumerTag] else {
                // A delivery racing a cancel: give it back rather than hold it.
                amqp_basic_reject(state, number, deliveryTag, 1)
                return
            }
            guard let owner else {
                // The connection was dropped and its deinit posted the close
                // that comes next, which returns unacknowledged deliveries
                // to their queues; a no-ack one has no tag to give back.
                return
            }
            if content.discard {
                logger.warning(
                    "message body over the consumer's limit dropped unread",
                    metadata: ["bytes": "\(content.bodySize)", "limit": "\(content.limit ?? 0)", "routing_key": "\(routingKey)"])
            }
            if !consumer.noAck { channel.acks.delivered(deliveryTag) }
            let delivery = AMQPDelivery(
                channel: AMQPChannel(connection: owner, id: channel.id, number: number, lifetime: channel.lifetime),
                consumerTag: consumerTag, deliveryTag: deliveryTag, redelivered: redelivered,
                exchange: exchange, routingKey: routingKey, properties: properties, body: content.body,
                bodySize: content.bodySize, bodyDiscarded: content.discard)
            consumer.handler(.delivery(delivery))
        case .returned(let code, let text, let exchange, let routingKey):
            guard let channel = channels[number] else { return }
            let returned = PublisherConfirmStateMachine.Return(
                replyCode: code, replyText: text,
                message: .init(
                    exchange: exchange, routingKey: routingKey, bodySize: content.bodySize, properties: properties))
            // Paired: the publish fails as returned when its basic.ack
            // arrives. Unpaired (no confirm mode): nobody waits to hear it.
            if case .unpaired = channel.confirms.returnReceived(returned) {
                logger.warning(
                    "message returned by broker", metadata: ["routing_key": "\(routingKey)", "reply": "\(code) \(text)"])
            }
        case .get(let deliveryTag, let redelivered, let exchange, let routingKey):
            // basic.get runs for a caller that holds the connection, so the
            // owner is there.
            guard let channel = channels[number], let owner else { return }
            completedGets[number] = AMQPDelivery(
                channel: AMQPChannel(connection: owner, id: channel.id, number: number, lifetime: channel.lifetime),
                consumerTag: "", deliveryTag: deliveryTag, redelivered: redelivered,
                exchange: exchange, routingKey: routingKey, properties: properties, body: content.body,
                bodySize: content.bodySize, bodyDiscarded: content.discard)
        }
    }

    /// After `basic.get-ok`: reads frames (handling those of other channels
    /// as usual) until the message's content is complete, within the RPC
    /// timeout.
    func awaitGetContent(
        on number: amqp_channel_t, deliveryTag: UInt64, redelivered: Bool, exchange: String, routingKey: String,
        limit: Int?, timeout: Duration
    ) throws -> AMQPDelivery {
        expectContent(
            on: number, .get(deliveryTag: deliveryTag, redelivered: redelivered, exchange: exchange, routingKey: routingKey),
            limit: limit)
        let deadline = ContinuousClock.now + min(max(timeout, .zero), .seconds(86_400))
        var frame = amqp_frame_t()
        while isOpen, completedGets[number] == nil {
            let remaining = deadline - ContinuousClock.now
            guard remaining > .zero else {
                let error = AMQPError(.timeout, "basic.get: the message content did not arrive within \(timeout.secondsValue) s")
                fail(with: error)
                throw error
            }
            var wait = timeval(min(remaining, .seconds(1)))
            let status = amqp_simple_wait_frame_noblock(state, &frame, &wait)
            if status == AMQP_STATUS_TIMEOUT.rawValue { continue }
            guard status == AMQP_STATUS_OK.rawValue else {
                let error = libraryError(status, during: "basic.get")
                fail(with: error)
                throw error
            }
            handleFrame(frame)
        }
        guard let delivery = completedGets.removeValue(forKey: number) else { throw closedError }
        return delivery
    }
}
