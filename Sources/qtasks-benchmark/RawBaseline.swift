import CRabbitMQ
import AMQP
import Foundation

/// The baseline: a bare rabbitmq-c consume-and-ack loop on one thread, as a
/// hand-written C client would do it (one connection, `basic.qos` prefetch,
/// `amqp_consume_message`, one `basic.ack` per message).
///
/// This file is the one place outside the `AMQP` module that calls
/// rabbitmq-c: measuring the C client on its own is the point of it.
enum RawBaseline {
    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    /// Consumes and acks `count` messages from `queue`; returns the seconds
    /// from the first delivery to the last ack. `ready` runs once the
    /// connection is open, before `basic.consume` (the point where the
    /// worker under test prints its `ready` line).
    static func consumeAndAck(
        _ configuration: AMQPConfiguration, queue: String, count: Int, prefetch: Int, ready: () -> Void = {}
    ) throws -> Double {
        let state = try openChannel(configuration)
        defer { amqp_destroy_connection(state) }
        amqp_basic_qos(state, 1, 0, UInt16(prefetch), 0)
        try check(state, "basic.qos")
        ready()
        let empty = amqp_table_t(num_entries: 0, entries: nil)
        try queue.withCString { name in
            amqp_basic_consume(state, 1, amqp_cstring_bytes(name), amqp_bytes_t(len: 0, bytes: nil), 0, 0, 0, empty)
            try check(state, "basic.consume")
        }
        var start: ContinuousClock.Instant?
        var envelope = amqp_envelope_t()
        for _ in 0..<count {
            amqp_maybe_release_buffers(state)
            let reply = amqp_consume_message(state, &envelope, nil, 0)
            guard reply.reply_type == AMQP_RESPONSE_NORMAL else { throw Failure(description: "consume failed") }
            if start == nil { start = .now }
            guard amqp_basic_ack(state, 1, envelope.delivery_tag, 0) == 0 else { throw Failure(description: "ack failed") }
            amqp_destroy_envelope(&envelope)
        }
        let elapsed = ContinuousClock.now - (start ?? .now)
        amqp_channel_close(state, 1, 200)
        amqp_connection_close(state, 200)
        return elapsed.seconds
    }

    /// The enqueue baseline: publishes `count` persistent messages of
    /// `body` to `queue` through the default exchange with publisher
    /// confirms, keeping up to `window` unconfirmed (what a hand-written
    /// C producer that pipelines its confirms does); returns the seconds
    /// from the first publish to the last confirm.
    static func publishWithConfirms(
        _ configuration: AMQPConfiguration, queue: String, body: [UInt8], count: Int, window: Int
    ) throws -> Double {
        let state = try openChannel(configuration)
        defer { amqp_destroy_connection(state) }
        amqp_confirm_select(state, 1)
        try check(state, "confirm.select")
        let basicAck: amqp_method_number_t = 0x003C_0050
        let basicNack: amqp_method_number_t = 0x003C_0078
        var published: UInt64 = 0
        var confirmed: UInt64 = 0
        let total = UInt64(count)
        let start = ContinuousClock.now
        try queue.withCString { routingKey in
            try "application/json".withCString { contentType in
                var properties = amqp_basic_properties_t()
                properties._flags = amqp_flags_t(AMQP_BASIC_CONTENT_TYPE_FLAG | AMQP_BASIC_DELIVERY_MODE_FLAG)
                properties.content_type = amqp_cstring_bytes(contentType)
                properties.delivery_mode = 2
                try body.withUnsafeBytes { raw in
                    let bytes = amqp_bytes_t(len: raw.count, bytes: UnsafeMutableRawPointer(mutating: raw.baseAddress))
                    while confirmed < total {
                        while published < total, published - confirmed < UInt64(window) {
                            guard amqp_basic_publish(
                                state, 1, amqp_bytes_t(len: 0, bytes: nil), amqp_cstring_bytes(routingKey), 0, 0,
                                &properties, bytes) == 0
                            else { throw Failure(description: "basic.publish failed") }
                            published += 1
                        }
                        amqp_maybe_release_buffers(state)
                        var frame = amqp_frame_t()
                        guard amqp_simple_wait_frame(state, &frame) == 0 else { throw Failure(description: "reading confirms failed") }
                        guard frame.frame_type == UInt8(AMQP_FRAME_METHOD) else { continue }
                        switch frame.payload.method.id {
                        case basicAck:
                            let ack = frame.payload.method.decoded.assumingMemoryBound(to: amqp_basic_ack_t.self).pointee
                            confirmed = ack.multiple != 0 ? max(confirmed, ack.delivery_tag) : confirmed + 1
                        case basicNack:
                            throw Failure(description: "the broker nacked a publish")
                        default:
                            continue
                        }
                    }
                }
            }
        }
        let elapsed = ContinuousClock.now - start
        amqp_channel_close(state, 1, 200)
        amqp_connection_close(state, 200)
        return elapsed.seconds
    }

    /// A new connection, logged in (plain TCP: the baseline is the bare
    /// client), with channel 1 open. The caller destroys it.
    private static func openChannel(_ configuration: AMQPConfiguration) throws -> amqp_connection_state_t {
        guard let state = amqp_new_connection() else { throw Failure(description: "amqp_new_connection failed") }
        do {
            guard let socket = amqp_tcp_socket_new(state) else { throw Failure(description: "amqp_tcp_socket_new failed") }
            guard amqp_socket_open(socket, configuration.host, Int32(configuration.port)) == 0 else {
                throw Failure(description: "cannot connect to \(configuration.host):\(configuration.port)")
            }
            var properties = amqp_table_t(num_entries: 0, entries: nil)
            let login = crabbitmq_login_plain(
                state, configuration.virtualHost, 0, 131_072, Int32(configuration.heartbeat.components.seconds), &properties,
                configuration.username, configuration.password)
            guard login.reply_type == AMQP_RESPONSE_NORMAL else { throw Failure(description: "login failed") }
            amqp_channel_open(state, 1)
            try check(state, "channel.open")
            return state
        } catch {
            amqp_destroy_connection(state)
            throw error
        }
    }

    private static func check(_ state: amqp_connection_state_t, _ what: String) throws {
        guard amqp_get_rpc_reply(state).reply_type == AMQP_RESPONSE_NORMAL else {
            throw Failure(description: "\(what) failed")
        }
    }
}

extension Duration {
    var seconds: Double {
        Double(components.seconds) + Double(components.attoseconds) / 1e18
    }
}
