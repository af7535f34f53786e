import CRabbitMQ
import Logging

#if canImport(Glibc)
import Glibc
#endif

/// The state of one connection that only its owner thread touches: the
/// rabbitmq-c connection and every channel on it. Nothing here is locked;
/// thread confinement is the synchronisation (see DESIGN.md, "Threading rules
/// for rabbitmq-c").
final class ConnectionCore {
    let state: amqp_connection_state_t
    let logger: Logger
    let connectionID: UInt64
    private(set) var isOpen = true
    /// True when this side asked for the close, so it is not an error.
    private(set) var closedLocally = false
    private(set) var closeError: AMQPError?
    var channels: [amqp_channel_t: ChannelState] = [:]
    /// Channel numbers never opened again on this connection: channels the
    /// broker closed for `consumer_timeout`, whose `close-ok` was not sent
    /// (see ``acknowledgeChannelClose(_:error:answeringCall:)``).
    var retiredChannelNumbers: Set<amqp_channel_t> = []
    /// Messages whose content frames are still arriving, by channel.
    var incoming = ContentAssemblyStateMachine()
    /// `basic.get` messages whose content is complete, for the waiting call.
    var completedGets: [amqp_channel_t: AMQPDelivery] = [:]
    private var nextChannelID: UInt64 = 1
    private var channelMax: Int
    private(set) var heartbeat: Int
    var blockedHandler: (@Sendable (String?) -> Void)?
    /// True between `connection.blocked` and `connection.unblocked`.
    var isBlocked = false
    /// How this connection was opened; a handshake that fails right after
    /// a TLS connect gets a hint about plain ports.
    var tls: AMQPConfiguration.TLS = .disable

    private init(state: amqp_connection_state_t, logger: Logger, connectionID: UInt64, channelMax: Int, heartbeat: Int) {
        self.state = state
        self.logger = logger
        self.connectionID = connectionID
        self.channelMax = channelMax
        self.heartbeat = heartbeat
    }

    deinit {
        amqp_destroy_connection(state)
    }

    /// The public handle this core belongs to; set by the connection right
    /// after opening, used to build `AMQPChannel` values for deliveries.
    /// Weak: the owner thread must not keep a dropped connection alive.
    weak var owner: AMQPConnection?

    // MARK: Opening

    /// Opens the TCP connection and performs the AMQP handshake.
    static func open(_ configuration: AMQPConfiguration, logger: Logger, connectionID: UInt64) throws -> ConnectionCore {
        try validateShortString(configuration.virtualHost, "virtual host")
        let tls = configuration.tls
        try tls.validate()
        if configuration.saslMechanism == .external, !tls.hasClientCertificate {
            throw AMQPError(.invalidArgument, "SASL EXTERNAL needs TLS with a client certificate")
        }
        let address = configuration.host.contains(":") ? "[\(configuration.host)]:\(configuration.port)" : "\(configuration.host):\(configuration.port)"
        guard let state = amqp_new_connection() else {
            throw AMQPError(.connectionFailed, "amqp_new_connection failed (out of memory)")
        }
        // The socket belongs to `state` (freed with it) and, like it, is
        // only touched on this, the owner thread.
        let socket: OpaquePointer
        do {
            socket = try tls.isEnabled ? openSSLSocket(state, tls, logger: logger, address: address) : tcpSocket(state)
        } catch {
            amqp_destroy_connection(state)
            throw error
        }
        let core = ConnectionCore(
            state: state, logger: logger, connectionID: connectionID,
            channelMax: configuration.channelMax, heartbeat: Int(configuration.heartbeat.heartbeatSeconds))
        core.tls = tls

        var connectTimeout = timeval(configuration.connectTimeout)
        errno = 0
        let opened = amqp_socket_open_noblock(socket, configuration.host, Int32(configuration.port), &connectTimeout)
        if opened != AMQP_STATUS_OK.rawValue {
            core.isOpen = false
            if tls.isEnabled, let error = tlsOpenError(opened, socket: socket, address: address, configuration: configuration) {
                throw error
            }
            // rabbitmq-c connects non-blockingly and drops the socket's own
            // error, leaving errno at EINPROGRESS: not worth showing.
            let systemError = errno != 0 && errno != EINPROGRESS ? " (\(String(cString: strerror(errno))))" : ""
            let hint = opened == AMQP_STATUS_SOCKET_ERROR.rawValue ? " (nothing listening there, or unreachable)" : ""
            let reason = opened == AMQP_STATUS_TIMEOUT.rawValue
                ? "timed out after \(configuration.connectTimeout.secondsValue) s\(tls.isEnabled ? " (TCP connect or TLS handshake: a server that does not answer TLS?)" : "")"
                : libraryErrorText(opened) + systemError + hint
            throw AMQPError(.connectionFailed, "cannot connect to \(address): \(reason)", libraryStatus: opened)
        }

        var handshakeTimeout = timeval(configuration.connectTimeout)
        amqp_set_handshake_timeout(state, &handshakeTimeout)
        var rpcTimeout = timeval(configuration.rpcTimeout)
        amqp_set_rpc_timeout(state, &rpcTimeout)

        let arena = CArena()
        let capabilities: AMQPTable = [
            "consumer_cancel_notify": true,
            "connection.blocked": true,
            "publisher_confirms": true,
            "basic.nack": true,
            "authentication_failure_close": true,
        ]
        var properties: AMQPTable = [
            "product": "swift-qtasks",
            "platform": "Swift",
            "capabilities": .table(capabilities),
        ]
        if let name = configuration.connectionName { properties["connection_name"] = .string(name) }
        var clientProperties = arena.table(properties)
        let reply: amqp_rpc_reply_t
        switch configuration.saslMechanism {
        case .plain:
            reply = crabbitmq_login_plain(
                state, arena.cString(configuration.virtualHost), Int32(configuration.channelMax),
                Int32(configuration.frameMax), configuration.heartbeat.heartbeatSeconds, &clientProperties,
                arena.cString(configuration.username), arena.cString(configuration.password))
        case .external:
            reply = crabbitmq_login_external(
                state, arena.cString(configuration.virtualHost), Int32(configuration.channelMax),
                Int32(configuration.frameMax), configuration.heartbeat.heartbeatSeconds, &clientProperties,
                arena.cString(configuration.username))
        }
        if reply.reply_type != AMQP_RESPONSE_NORMAL {
            core.isOpen = false
            throw core.loginError(reply, address: address, configuration: configuration)
        }
        core.channelMax = Int(amqp_get_channel_max(state))
        core.heartbeat = Int(amqp_get_heartbeat(state))
        return core
    }

    private func loginError(_ reply: amqp_rpc_reply_t, address: String, configuration: AMQPConfiguration) -> AMQPError {
        switch reply.reply_type {
        case AMQP_RESPONSE_SERVER_EXCEPTION where reply.reply.id == MethodID.connectionClose:
            let close = reply.reply.decoded.assumingMemoryBound(to: amqp_connection_close_t.self).pointee
            let code = close.reply_code
            let text = CDecode.string(close.reply_text)
            var ok = amqp_connection_close_ok_t(dummy: 0)
            _ = amqp_send_method(state, 0, MethodID.connectionCloseOK, &ok)
            if code == 403 {
                let who = configuration.saslMechanism == .external
                    ? "the client certificate (SASL EXTERNAL)" : "user '\(configuration.username)'"
                return AMQPError(
                    .authenticationFailed, "broker at \(address) refused \(who)",
                    replyCode: code, replyText: text)
            }
            return AMQPError(
                .connectionFailed, "broker at \(address) refused the connection to vhost '\(configuration.virtualHost)'",
                replyCode: code, replyText: text)
        case AMQP_RESPONSE_LIBRARY_EXCEPTION:
            let status = reply.library_error
            if status == AMQP_STATUS_TIMEOUT.rawValue {
                return AMQPError(
                    .connectionFailed,
                    "AMQP handshake with \(address) timed out after \(configuration.connectTimeout.secondsValue) s (a broker that does not answer, or not an AMQP 0-9-1 port\(configuration.tls.isEnabled ? "" : "; a TLS port needs amqps://"))",
                    libraryStatus: status)
            }
            if status == AMQP_STATUS_BROKER_UNSUPPORTED_SASL_METHOD.rawValue {
                return AMQPError(
                    .authenticationFailed,
                    "broker at \(address) does not offer SASL \(configuration.saslMechanism.rawValue)\(configuration.saslMechanism == .external ? " (enable the rabbitmq_auth_mechanism_ssl plugin and add EXTERNAL to auth_mechanisms)" : "")",
                    libraryStatus: status)
            }
            // With TLS 1.3 the broker checks the client certificate after
            // the client's side of the handshake has completed: its refusal
            // (an alert) arrives as the first read of the AMQP handshake. The
            // broker closes right after the alert, and a reset can beat the
            // alert to the reader (the client's protocol header is still
            // unread there), so a closed socket counts too.
            let tlsRefusalStatuses = [
                AMQP_STATUS_SSL_ERROR, AMQP_STATUS_SSL_CONNECTION_FAILED, AMQP_STATUS_SOCKET_ERROR,
                AMQP_STATUS_CONNECTION_CLOSED, AMQP_STATUS_SOCKET_CLOSED,
            ].map(\.rawValue)
            if configuration.tls.isEnabled && tlsRefusalStatuses.contains(status) {
                let certificate = configuration.tls.certificateFile.map { "this client's certificate \($0)" }
                    ?? "a connection without a client certificate"
                return AMQPError(
                    .tlsHandshakeFailed,
                    "TLS to \(address): the broker ended the TLS session at the start of the AMQP handshake (\(libraryErrorText(status))); it most likely refused \(certificate) (a client certificate must be signed by a CA the broker trusts, and may be required: fail_if_no_peer_cert)",
                    libraryStatus: status)
            }
            // A TLS port answers a plain AMQP header by closing the
            // connection (or with TLS alert bytes): say so instead of a bare
            // "connection closed".
            let hint = !configuration.tls.isEnabled && (status == AMQP_STATUS_CONNECTION_CLOSED.rawValue
                || status == AMQP_STATUS_SOCKET_ERROR.rawValue || status == AMQP_STATUS_BAD_AMQP_DATA.rawValue
                || status == AMQP_STATUS_UNEXPECTED_STATE.rawValue)
                ? " (is \(address) a TLS port? Use amqps:// for TLS)" : ""
            return AMQPError(
                .connectionFailed, "AMQP handshake with \(address) failed: \(libraryErrorText(status))\(hint)",
                libraryStatus: status)
        default:
            return AMQPError(.connectionFailed, "AMQP handshake with \(address) failed")
        }
    }

    // MARK: Replies and failures

    /// Turns the outcome of the last synchronous request into an error,
    /// closing what the broker closed.
    func checkReply(_ what: String, channel: ChannelState?) throws {
        let reply = amqp_get_rpc_reply(state)
        switch reply.reply_type {
        case AMQP_RESPONSE_NORMAL:
            return
        case AMQP_RESPONSE_SERVER_EXCEPTION:
            throw handleServerClose(reply.reply, during: what, channel: channel)
        case AMQP_RESPONSE_LIBRARY_EXCEPTION:
            let error = libraryError(reply.library_error, during: what)
            fail(with: error)
            throw error
        default:
            let error = AMQPError(.protocolError, "\(what): no reply from rabbitmq-c")
            fail(with: error)
            throw error
        }
    }

    private func handleServerClose(_ method: amqp_method_t, during what: String, channel: ChannelState?) -> AMQPError {
        if method.id == MethodID.channelClose, let number = channel?.number {
            let close = method.decoded.assumingMemoryBound(to: amqp_channel_close_t.self).pointee
            let error = AMQPError(
                .channelClosed, "\(what) failed; the broker closed channel \(number)",
                replyCode: close.reply_code, replyText: CDecode.string(close.reply_text))
            acknowledgeChannelClose(number, error: error, answeringCall: true)
            return error
        }
        if method.id == MethodID.connectionClose {
            let close = method.decoded.assumingMemoryBound(to: amqp_connection_close_t.self).pointee
            let error = AMQPError(
                .connectionClosed, "\(what) failed; the broker closed the connection",
                replyCode: close.reply_code, replyText: CDecode.string(close.reply_text))
            var ok = amqp_connection_close_ok_t(dummy: 0)
            _ = amqp_send_method(state, 0, MethodID.connectionCloseOK, &ok)
            fail(with: error)
            return error
        }
        let error = AMQPError(.protocolError, "\(what): unexpected method 0x\(String(method.id, radix: 16))")
        fail(with: error)
        return error
    }

    /// - Parameter answeringCall: the close is the broker's answer to a
    ///   call (a refused `queue.declare`), which gets `error` thrown and
    ///   decides what to say: logged at debug only, so that an expected
    ///   refusal (a 406 for a queue that exists with other arguments, a 404
    ///   of a passive declare) is not a warning twice. A close that nobody
    ///   waits for (a refused publish, a consumer's channel) is a warning.
    ///
    /// A close for RabbitMQ's `consumer_timeout` (`406 PRECONDITION_FAILED
    /// - delivery acknowledgement on channel N timed out`) gets no
    /// `close-ok`: RabbitMQ (3.10 here, and reported on later 3.x) has
    /// already dropped the channel when it sends that close, and answers the
    /// `close-ok` the protocol asks for with `504 CHANNEL_ERROR - expected
    /// 'channel.open'`, closing the whole connection and every other
    /// channel's tasks with it. The number is retired instead (never opened
    /// again on this connection), so a broker that does wait for the
    /// `close-ok` is not confused by a new channel on it either.
    func acknowledgeChannelClose(_ number: amqp_channel_t, error: AMQPError, answeringCall: Bool = false) {
        if Self.isConsumerTimeoutClose(error) {
            retiredChannelNumbers.insert(number)
        } else {
            var ok = amqp_channel_close_ok_t(dummy: 0)
            _ = amqp_send_method(state, number, MethodID.channelCloseOK, &ok)
        }
        incoming.channelClosed(number)
        if let channel = channels.removeValue(forKey: number) {
            logger.log(
                level: answeringCall ? .debug : .warning, "channel closed by broker",
                metadata: ["channel": "\(number)", "error": "\(error)"])
            channel.fail(with: error)
        }
    }

    /// Whether `error` is RabbitMQ's channel close for `consumer_timeout`.
    static func isConsumerTimeoutClose(_ error: AMQPError) -> Bool {
        guard error.replyCode == 406, let text = error.replyText else { return false }
        return text.contains("delivery acknowledgement on channel") && text.contains("timed out")
    }

    func libraryError(_ status: Int32, during what: String) -> AMQPError {
        let code: AMQPError.Code
        switch status {
        case AMQP_STATUS_TIMEOUT.rawValue: code = .timeout
        case AMQP_STATUS_HEARTBEAT_TIMEOUT.rawValue: code = .heartbeatTimeout
        default: code = .connectionClosed
        }
        return AMQPError(code, "\(what): \(libraryErrorText(status))", libraryStatus: status)
    }

    /// Marks the connection dead and fails everything waiting on it. The
    /// owner thread's loop ends after the current step.
    func fail(with error: AMQPError) {
        guard isOpen else { return }
        isOpen = false
        closeError = error
        let open = channels.values
        channels.removeAll()
        for channel in open { channel.fail(with: error) }
    }

    var closedError: AMQPError {
        closeError ?? AMQPError(.connectionClosed, "the connection is closed")
    }

    var socketDescriptor: Int32 { amqp_get_sockfd(state) }

    /// Frames rabbitmq-c has already read from the socket (or queued during a
    /// synchronous request) that `poll` would never report again.
    var hasBufferedFrames: Bool { amqp_frames_enqueued(state) != 0 || amqp_data_in_buffer(state) != 0 }

    // MARK: Channels

    func channel(_ id: UInt64, number: amqp_channel_t) throws -> ChannelState {
        guard isOpen else { throw closedError }
        guard let channel = channels[number], channel.id == id else {
            throw AMQPError(.channelClosed, "channel \(number) is closed")
        }
        return channel
    }

    func openChannel() throws -> ChannelState {
        guard isOpen else { throw closedError }
        let limit = channelMax == 0 ? 65535 : channelMax
        guard let number = (1...limit).lazy.map({ amqp_channel_t($0) }).first(where: { channels[$0] == nil && !retiredChannelNumbers.contains($0) }) else {
            throw AMQPError(.invalidArgument, "all \(limit) channels of this connection are in use")
        }
        _ = amqp_channel_open(state, number)
        let channel = ChannelState(id: nextChannelID, number: number)
        if isBlocked { channel.confirms.connectionBlocked() }
        nextChannelID += 1
        channels[number] = channel
        do {
            try checkReply("channel.open", channel: channel)
        } catch {
            channels[number] = nil
            throw error
        }
        return channel
    }

    func closeChannel(_ channel: ChannelState) {
        guard isOpen, channels[channel.number] === channel else { return }
        flushAcks()
        channels[channel.number] = nil
        let reply = amqp_channel_close(state, channel.number, 200)
        channel.fail(with: AMQPError(.channelClosed, "channel \(channel.number) was closed by this process"))
        if reply.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION {
            fail(with: libraryError(reply.library_error, during: "channel.close"))
        }
    }

    /// `connection.close` from this side; waits for `close-ok` up to the RPC
    /// timeout.
    func closeConnection() {
        guard isOpen else { return }
        flushAcks()
        closedLocally = true
        _ = amqp_connection_close(state, 200)
        fail(with: AMQPError(.connectionClosed, "the connection was closed by this process"))
    }

    // MARK: Acknowledgements

    /// Channels with acks queued by `AMQPChannel.enqueueAck`, written by
    /// `flushAcks()` at the end of the owner thread's current step.
    private var channelsWithPendingAcks: [ChannelState] = []

    func acksPending(on channel: ChannelState) {
        if !channelsWithPendingAcks.contains(where: { $0 === channel }) { channelsWithPendingAcks.append(channel) }
    }

    /// Writes the queued acks, as few frames as `AckCoalescer` allows.
    func flushAcks() {
        guard !channelsWithPendingAcks.isEmpty else { return }
        let pending = channelsWithPendingAcks
        channelsWithPendingAcks.removeAll(keepingCapacity: true)
        for channel in pending where isOpen && channels[channel.number] === channel {
            for ack in channel.acks.flush() {
                let status = amqp_basic_ack(state, channel.number, ack.tag, ack.multiple ? 1 : 0)
                if status != 0 {
                    fail(with: libraryError(status, during: "basic.ack"))
                    return
                }
            }
        }
    }

    // MARK: Publishing

    /// Sends now, or holds the publish (in order) while the confirm window
    /// is full or the broker has blocked this connection
    /// (`PublisherConfirmStateMachine` decides).
    func publish(_ message: OutgoingMessage, on channel: ChannelState, waiter: PublishWaiter) {
        let id = channel.registerPublish(waiter)
        switch channel.confirms.publishRequested(id) {
        case .send:
            send(message, id: id, on: channel)
        case .hold:
            channel.heldMessages[id] = message
        case .fail:
            channel.completePublish(id, .failure(AMQPError(.channelClosed, "channel \(channel.number) is closed")))
        }
    }

    /// Sends held publishes while the window has room and the connection is
    /// not blocked.
    func sendHeld(on channel: ChannelState) {
        while isOpen, let id = channel.confirms.nextHeld() {
            guard let message = channel.heldMessages.removeValue(forKey: id) else {
                channel.confirms.sendFailed(id)
                continue
            }
            send(message, id: id, on: channel)
        }
    }

    private func send(_ message: OutgoingMessage, id: ChannelState.PublishID, on channel: ChannelState) {
        let arena = CArena()
        var properties = arena.properties(message.properties)
        let status = message.body.withUnsafeBytes { body in
            amqp_basic_publish(
                state, channel.number, arena.bytes(message.exchange), arena.bytes(message.routingKey),
                message.mandatory ? 1 : 0, 0, &properties,
                amqp_bytes_t(len: body.count, bytes: UnsafeMutableRawPointer(mutating: body.baseAddress)))
        }
        guard status == AMQP_STATUS_OK.rawValue else {
            let error = libraryError(status, during: "basic.publish")
            channel.confirms.sendFailed(id)
            channel.completePublish(id, .failure(error))
            if status != AMQP_STATUS_TABLE_TOO_BIG.rawValue && status != AMQP_STATUS_INVALID_PARAMETER.rawValue {
                fail(with: error)
            }
            return
        }
        switch channel.confirms.sent(id, returnKey: message.returnKey) {
        case .succeed: channel.completePublish(id, .success(()))
        case .awaitConfirm: break
        }
    }

    /// `basic.ack` / `basic.nack` from the broker for publishes on `channel`.
    func confirm(_ tag: UInt64, multiple: Bool, nacked: Bool, on channel: ChannelState) {
        let settlements = nacked
            ? channel.confirms.nackReceived(deliveryTag: tag, multiple: multiple)
            : channel.confirms.ackReceived(deliveryTag: tag, multiple: multiple)
        for settlement in settlements {
            switch settlement.outcome {
            case .confirmed:
                channel.completePublish(settlement.id, .success(()))
            case .nacked:
                channel.completePublish(
                    settlement.id, .failure(AMQPError(.publishNacked, "the broker rejected the message (basic.nack)")))
            case .returned(let code, let text):
                channel.completePublish(
                    settlement.id,
                    .failure(AMQPError(.publishReturned, "the message matched no queue", replyCode: code, replyText: text)))
            }
        }
        sendHeld(on: channel)
    }

}

func libraryErrorText(_ status: Int32) -> String {
    guard let text = amqp_error_string2(status) else { return "rabbitmq-c status \(status)" }
    return String(cString: text)
}
