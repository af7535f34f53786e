/// A FIFO of ready messages for ``MemoryBroker``; requeued messages go to
/// the front.
struct MemoryQueue {
    struct Entry {
        var message: Message
        var redelivered: Bool
    }

    private var entries: [Entry] = []
    private var head = 0

    var count: Int { entries.count - head }
    var isEmpty: Bool { head == entries.count }
    var messages: [Message] { entries[head...].map(\.message) }

    mutating func append(_ entry: Entry) {
        entries.append(entry)
    }

    mutating func prepend(_ entry: Entry) {
        if head > 0 {
            head -= 1
            entries[head] = entry
        } else {
            entries.insert(entry, at: 0)
        }
    }

    mutating func popFirst() -> Entry? {
        guard head < entries.count else { return nil }
        let entry = entries[head]
        head += 1
        // Reclaim the consumed prefix now and then, not on every pop.
        if head >= 64 && head * 2 >= entries.count {
            entries.removeFirst(head)
            head = 0
        }
        return entry
    }

    mutating func removeAll() {
        entries = []
        head = 0
    }
}
