/// The publishing side of one channel as a value: which publish may be
/// written now, which must wait, and how each written one ends (confirmed,
/// nacked, returned).
///
/// It does no I/O and holds no continuations: the caller names each publish
/// with a ``PublishID``, keeps the message and its waiter, feeds in what
/// happens (`publishRequested`, `sent`, `ackReceived`, `returnReceived`, ...)
/// and does what the returned action says. So the rules below are tested as
/// plain values (AMQPStateMachineTests), without a broker.
///
/// Rules:
/// - Without confirm mode a publish is done once written.
/// - In confirm mode (`confirm.select`) at most `window` publishes are
///   unconfirmed at once; later ones are held, in order, until confirms make
///   room. Publishes are also held while the broker has blocked the
///   connection (`connection.blocked`): writing then would stall the owner
///   thread inside rabbitmq-c's send.
/// - The broker numbers the publishes written after `confirm.select` from 1;
///   `basic.ack`/`basic.nack` name that number, with `multiple` every
///   unconfirmed one up to it. Confirms may arrive out of order (messages
///   routed to different queues).
/// - An unroutable mandatory publish gets `basic.return` *before* the
///   `basic.ack` that confirms it; it then ends as returned, not confirmed.
///   `basic.return` carries no sequence number, so it is paired with the
///   oldest unconfirmed, not yet returned mandatory publish of the same
///   exchange, routing key and body size (the broker routes, and returns, a
///   channel's publishes in order), preferring one whose properties match
///   too. The ack that follows may be a `multiple` one naming a later
///   sequence number (RabbitMQ coalesces confirms), which is why the pairing
///   is by message and not by the next ack's tag.
/// - When the channel fails, everything unconfirmed or held fails with it.
struct PublisherConfirmStateMachine {
    /// Names one publish for the caller, unique on the channel.
    typealias PublishID = UInt64

    /// What a returnable publish looked like, to pair it with a
    /// `basic.return` (which names no sequence number).
    struct ReturnKey: Hashable {
        var exchange: String
        var routingKey: String
        /// In bytes.
        var bodySize: UInt64
        var properties: AMQPProperties
    }

    /// A `basic.return` with its content header.
    struct Return: Hashable {
        var replyCode: UInt16
        var replyText: String
        var message: ReturnKey
    }

    /// How a written publish ends.
    enum Outcome: Hashable {
        case confirmed
        /// `basic.nack`: the broker could not take the message.
        case nacked
        /// `basic.return` then `basic.ack`: the message matched no queue.
        case returned(replyCode: UInt16, replyText: String)
    }

    /// One publish settled by a confirm.
    struct Settlement: Hashable {
        var id: PublishID
        var outcome: Outcome
    }

    /// What to do with a new publish.
    enum PublishAction: Hashable {
        /// Write it now, then report `sent` or `sendFailed`.
        case send
        /// Keep it; `nextHeld()` hands it back when it may be written.
        case hold
        /// The channel has failed: fail the publish.
        case fail
    }

    /// What to do once a publish is written.
    enum SentAction: Hashable {
        /// Not in confirm mode: the publish is done.
        case succeed
        /// Wait for its confirm, which will name `sequence`.
        case awaitConfirm(sequence: UInt64)
    }

    /// What to do with a `basic.return`.
    enum ReturnAction: Hashable {
        /// Paired with the publish of this sequence number; it will end as
        /// `.returned` when its confirm arrives. Nothing to do now.
        case paired(sequence: UInt64)
        /// Not confirm mode, or no publish matches: the caller logs it.
        case unpaired
    }

    private struct Unconfirmed {
        var sequence: UInt64
        var id: PublishID
        /// Set for mandatory publishes only: only they can come back.
        var returnKey: ReturnKey?
        var returned: (replyCode: UInt16, replyText: String)?
    }

    /// The most unconfirmed publishes; nil until `confirm.select`.
    private(set) var window: Int?
    private(set) var isBlocked = false
    private(set) var hasFailed = false
    private var nextSequence: UInt64 = 1
    /// Written, not yet confirmed, ascending by sequence; `unconfirmedHead`
    /// skips the settled front so that settling in order costs O(1).
    private var unconfirmed: [Unconfirmed] = []
    private var unconfirmedHead = 0
    /// Waiting for room, in order.
    private var held: [PublishID] = []
    private var heldHead = 0
    /// Handed out with `.send` or by `nextHeld()`, not yet reported `sent`
    /// or `sendFailed`: they count against the window.
    private var writing = 0

    var unconfirmedCount: Int { unconfirmed.count - unconfirmedHead }
    var heldCount: Int { held.count - heldHead }
    var isConfirmMode: Bool { window != nil }

    /// True when one more publish may be written now.
    private var hasRoom: Bool {
        guard !isBlocked, !hasFailed else { return false }
        guard let window else { return true }
        return unconfirmedCount + writing < window
    }

    // MARK: Events

    /// `confirm.select-ok`: from now on publishes are numbered and wait for
    /// their confirm.
    mutating func confirmSelected(window: Int) {
        precondition(window > 0, "the confirm window is validated before confirm.select")
        self.window = window
    }

    /// A new publish. Held ones keep their order: a new publish never
    /// overtakes them.
    mutating func publishRequested(_ id: PublishID) -> PublishAction {
        if hasFailed { return .fail }
        if heldCount == 0 && hasRoom {
            writing += 1
            return .send
        }
        held.append(id)
        return .hold
    }

    /// The next held publish that may be written now, if any; the caller
    /// writes it and reports `sent` or `sendFailed`. Call after events that
    /// make room (`sent`, confirms, `connectionUnblocked`) until it returns
    /// nil.
    mutating func nextHeld() -> PublishID? {
        guard heldCount > 0, hasRoom else { return nil }
        let id = held[heldHead]
        heldHead += 1
        if heldHead == held.count {
            held.removeAll(keepingCapacity: true)
            heldHead = 0
        }
        writing += 1
        return id
    }

    /// The publish was written to the socket.
    ///
    /// - Parameter returnKey: for a mandatory publish, what it looked like,
    ///   so that a `basic.return` can be paired with it; nil otherwise.
    mutating func sent(_ id: PublishID, returnKey: ReturnKey?) -> SentAction {
        writing -= 1
        guard window != nil else { return .succeed }
        let sequence = nextSequence
        nextSequence += 1
        unconfirmed.append(Unconfirmed(sequence: sequence, id: id, returnKey: returnKey))
        return .awaitConfirm(sequence: sequence)
    }

    /// The publish could not be written (the caller fails it). It took no
    /// sequence number: the broker never saw it.
    mutating func sendFailed(_ id: PublishID) {
        writing -= 1
    }

    /// `basic.ack` from the broker.
    mutating func ackReceived(deliveryTag: UInt64, multiple: Bool) -> [Settlement] {
        settle(upTo: deliveryTag, multiple: multiple, nacked: false)
    }

    /// `basic.nack` from the broker.
    mutating func nackReceived(deliveryTag: UInt64, multiple: Bool) -> [Settlement] {
        settle(upTo: deliveryTag, multiple: multiple, nacked: true)
    }

    /// `basic.return` (with its content header) from the broker.
    mutating func returnReceived(_ returned: Return) -> ReturnAction {
        guard window != nil else { return .unpaired }
        var firstMatch: Int?
        for index in unconfirmedHead..<unconfirmed.count {
            let entry = unconfirmed[index]
            guard entry.returned == nil, let key = entry.returnKey, key.exchange == returned.message.exchange,
                key.routingKey == returned.message.routingKey, key.bodySize == returned.message.bodySize
            else { continue }
            // The broker may re-encode header values (it widens some integer
            // types), so properties only break a tie between candidates.
            if key.properties == returned.message.properties {
                firstMatch = index
                break
            }
            if firstMatch == nil { firstMatch = index }
        }
        guard let index = firstMatch else { return .unpaired }
        unconfirmed[index].returned = (returned.replyCode, returned.replyText)
        return .paired(sequence: unconfirmed[index].sequence)
    }

    /// `connection.blocked`: hold every publish from now on.
    mutating func connectionBlocked() {
        isBlocked = true
    }

    /// `connection.unblocked`: held publishes may go (see `nextHeld()`).
    mutating func connectionUnblocked() {
        isBlocked = false
    }

    /// The channel or its connection failed: returns every unconfirmed and
    /// held publish, oldest first, for the caller to fail. Later publishes
    /// are refused with `.fail`.
    mutating func channelFailed() -> [PublishID] {
        hasFailed = true
        let failed = unconfirmed[unconfirmedHead...].map(\.id) + held[heldHead...]
        unconfirmed.removeAll()
        unconfirmedHead = 0
        held.removeAll()
        heldHead = 0
        return failed
    }

    // MARK: Settling

    private mutating func settle(upTo tag: UInt64, multiple: Bool, nacked: Bool) -> [Settlement] {
        var settled: [Settlement] = []
        if multiple {
            // Out-of-order single confirms leave gaps, never later entries
            // before earlier ones: the front is the lowest sequence.
            while unconfirmedHead < unconfirmed.count, unconfirmed[unconfirmedHead].sequence <= tag {
                settled.append(settlement(unconfirmed[unconfirmedHead], nacked: nacked))
                unconfirmedHead += 1
            }
        } else if unconfirmedHead < unconfirmed.count, unconfirmed[unconfirmedHead].sequence == tag {
            settled.append(settlement(unconfirmed[unconfirmedHead], nacked: nacked))
            unconfirmedHead += 1
        } else if let index = unconfirmed[unconfirmedHead...].firstIndex(where: { $0.sequence == tag }) {
            // RabbitMQ may confirm out of order when messages go to
            // different queues.
            settled.append(settlement(unconfirmed[index], nacked: nacked))
            unconfirmed.remove(at: index)
        }
        // A tag that is not unconfirmed (already settled, or never sent) is
        // ignored: nothing waits for it.
        compact()
        return settled
    }

    private func settlement(_ entry: Unconfirmed, nacked: Bool) -> Settlement {
        if nacked { return Settlement(id: entry.id, outcome: .nacked) }
        if let returned = entry.returned {
            let outcome = Outcome.returned(replyCode: returned.replyCode, replyText: returned.replyText)
            return Settlement(id: entry.id, outcome: outcome)
        }
        return Settlement(id: entry.id, outcome: .confirmed)
    }

    private mutating func compact() {
        if unconfirmedHead == unconfirmed.count {
            unconfirmed.removeAll(keepingCapacity: true)
            unconfirmedHead = 0
        } else if unconfirmedHead > 1024 && unconfirmedHead * 2 > unconfirmed.count {
            unconfirmed.removeFirst(unconfirmedHead)
            unconfirmedHead = 0
        }
    }
}
