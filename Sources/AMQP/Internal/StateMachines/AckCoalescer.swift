/// Turns the acks of one channel into as few `basic.ack` frames as is safe.
///
/// A worker acks most deliveries in the order they came; one `basic.ack`
/// with `multiple` set then settles a whole run of them, which saves a
/// syscall and a frame per message. `multiple` acks *every* outstanding tag
/// up to the one named, so it is only used for a prefix of the outstanding
/// tags that are all acked. Acks outside such a prefix go out singly at
/// once: holding them until a slow task ahead of them finishes would delay
/// them for as long as that task runs.
///
/// A pure value with no I/O, so its rules are tested directly.
struct AckCoalescer {
    /// Tags the broker counts as unacknowledged, ascending (delivery tags
    /// grow on a channel); `head` skips the settled front.
    private var outstanding: [UInt64] = []
    private var head = 0
    /// Acked by the user, not yet written.
    private var pending: Set<UInt64> = []
    /// Outstanding tags already settled by a frame of their own (a single
    /// ack, nack or reject): skipped when they reach the front.
    private var settled: Set<UInt64> = []

    /// An ack frame to write.
    struct Ack: Equatable {
        var tag: UInt64
        var multiple: Bool
    }

    var hasPending: Bool { !pending.isEmpty }
    var outstandingCount: Int { outstanding.count - head - settled.count }

    /// Records a delivery that must be acknowledged.
    mutating func delivered(_ tag: UInt64) {
        outstanding.append(tag)
    }

    /// Queues an ack for `flush()`. Returns false when `tag` is not
    /// outstanding (unknown, or already settled): the caller writes it as
    /// it is and lets the broker judge.
    mutating func ack(_ tag: UInt64) -> Bool {
        guard isOutstanding(tag), !pending.contains(tag) else { return false }
        pending.insert(tag)
        return true
    }

    /// Records a frame the caller writes itself (`basic.nack`,
    /// `basic.reject`, or an ack with `multiple`).
    mutating func settledDirectly(_ tag: UInt64, multiple: Bool) {
        if multiple {
            while head < outstanding.count, outstanding[head] <= tag {
                pending.remove(outstanding[head])
                settled.remove(outstanding[head])
                head += 1
            }
            compact()
        } else if isOutstanding(tag) {
            pending.remove(tag)
            settled.insert(tag)
            advancePastSettled()
        }
    }

    /// The frames that settle every pending ack: one `multiple` ack for the
    /// acked prefix, single acks for the rest.
    mutating func flush() -> [Ack] {
        guard !pending.isEmpty else { return [] }
        var frames: [Ack] = []
        var last: UInt64?
        var run = 0
        while head < outstanding.count {
            let tag = outstanding[head]
            if pending.remove(tag) != nil {
                last = tag
                run += 1
            } else if settled.remove(tag) == nil {
                break
            }
            head += 1
        }
        if let last { frames.append(Ack(tag: last, multiple: run > 1)) }
        for tag in pending.sorted() {
            frames.append(Ack(tag: tag, multiple: false))
            settled.insert(tag)
        }
        pending.removeAll(keepingCapacity: true)
        compact()
        return frames
    }

    private func isOutstanding(_ tag: UInt64) -> Bool {
        guard !settled.contains(tag) else { return false }
        var low = head
        var high = outstanding.count
        while low < high {
            let middle = (low + high) / 2
            if outstanding[middle] < tag { low = middle + 1 } else { high = middle }
        }
        return low < outstanding.count && outstanding[low] == tag
    }

    private mutating func advancePastSettled() {
        while head < outstanding.count, settled.remove(outstanding[head]) != nil { head += 1 }
        compact()
    }

    private mutating func compact() {
        if head == outstanding.count {
            outstanding.removeAll(keepingCapacity: true)
            head = 0
        } else if head > 1024, head * 2 > outstanding.count {
            outstanding.removeFirst(head)
            head = 0
        }
    }
}
