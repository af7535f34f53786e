/// Assembles message content (a content header frame, then body frames)
/// per channel, as a value.
///
/// AMQP keeps one channel's content frames together but lets frames of
/// other channels come in between, so the owner thread assembles content
/// frame by frame as it reads, keyed by channel, instead of blocking in
/// `amqp_read_message` (which also keeps the whole body in the channel's
/// memory pool until it is complete). The machine does no I/O and sees no C
/// types: the caller decodes each frame and feeds it in, and acts on the
/// returned ``FrameAction``.
struct ContentAssemblyStateMachine {
    /// A body larger than this many bytes is worth recycling rabbitmq-c's
    /// channel pool for frame by frame; smaller ones fit in a few pages.
    static let recycleThreshold: UInt64 = 65_536

    /// What a method frame that announces content means for the channel.
    enum ExpectAction: Hashable {
        case none
        /// The channel was still assembling an earlier message: that one is
        /// dropped (the caller logs it).
        case droppedUnfinished(IncomingContent.Purpose)
    }

    /// What to do after a content frame.
    enum FrameAction: Hashable {
        /// More body frames are due. With `recycleBuffers`, the frame's
        /// memory is no longer needed (its bytes were copied): release the
        /// channel's buffers so a large body does not grow the pool to its
        /// size.
        case awaitBody(recycleBuffers: Bool)
        /// The message is complete.
        case complete(IncomingContent, recycleBuffers: Bool)
        /// The frame breaks AMQP's framing rules: the caller closes the
        /// connection with this reason.
        case protocolError(String)
    }

    private var channels: [UInt16: IncomingContent] = [:]

    /// True while `channel` is between a content method and its last frame.
    func isAssembling(on channel: UInt16) -> Bool { channels[channel] != nil }

    /// A method frame that content frames follow (`basic.deliver`,
    /// `basic.return`, `basic.get-ok`).
    ///
    /// - Parameter limit: a body over this many bytes is read and dropped;
    ///   nil: no limit.
    mutating func contentMethodReceived(
        on channel: UInt16, _ purpose: IncomingContent.Purpose, limit: Int?
    ) -> ExpectAction {
        let earlier = channels.updateValue(IncomingContent(purpose, limit: limit), forKey: channel)
        return earlier.map { .droppedUnfinished($0.purpose) } ?? .none
    }

    /// A content header frame.
    mutating func headerReceived(on channel: UInt16, bodySize: UInt64, properties: AMQPProperties) -> FrameAction {
        guard var content = channels[channel], !content.hasHeader else {
            return .protocolError("unexpected content header on channel \(channel)")
        }
        guard content.header(bodySize: bodySize, properties: properties) else {
            channels[channel] = nil
            return .protocolError("content body size \(bodySize) is not addressable")
        }
        return finishIfComplete(content, on: channel, recycleBuffers: false)
    }

    /// A content body frame; its bytes are copied before this returns.
    mutating func bodyReceived(on channel: UInt16, _ fragment: UnsafeRawBufferPointer) -> FrameAction {
        // Moved out while appending, so the body array is not copied.
        guard var content = channels.removeValue(forKey: channel) else {
            return .protocolError("unexpected content body on channel \(channel)")
        }
        guard content.hasHeader else {
            return .protocolError("unexpected content body on channel \(channel)")
        }
        guard content.append(fragment) else {
            return .protocolError("content body frames exceed the announced size on channel \(channel)")
        }
        return finishIfComplete(content, on: channel, recycleBuffers: content.bodySize > Self.recycleThreshold)
    }

    /// The channel closed: whatever it was assembling is dropped.
    mutating func channelClosed(_ channel: UInt16) {
        channels[channel] = nil
    }

    private mutating func finishIfComplete(_ content: IncomingContent, on channel: UInt16, recycleBuffers: Bool)
        -> FrameAction
    {
        guard content.isComplete else {
            channels[channel] = content
            return .awaitBody(recycleBuffers: recycleBuffers)
        }
        channels[channel] = nil
        return .complete(content, recycleBuffers: recycleBuffers)
    }
}
