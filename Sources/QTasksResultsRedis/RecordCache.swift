import Foundation
import QTasks

/// The unfinished records this store wrote last, with their JSON text: a
/// batch that reads one back unchanged (its task's next events, the usual
/// case) uses the record instead of parsing the text again. Only a
/// byte-for-byte equal text counts, so a record another process wrote in
/// between is parsed as usual.
///
/// Bounded: past `capacity` entries the oldest go first. Used on the store's
/// queue only.
struct RecordCache {
    private var entries: [String: (json: String, record: TaskRecord)] = [:]
    /// Insertion order, for eviction; may name uuids removed since.
    private var order: [String] = []
    private var orderStart = 0
    let capacity: Int

    init(capacity: Int) {
        self.capacity = max(0, capacity)
    }

    /// The record whose JSON text is `json`, if it is the one cached for `uuid`.
    func record(for uuid: String, json: String) -> TaskRecord? {
        guard let entry = entries[uuid], Self.sameBytes(entry.json, json) else { return nil }
        return entry.record
    }

    mutating func insert(_ record: TaskRecord, json: String) {
        guard capacity > 0 else { return }
        if entries.updateValue((json, record), forKey: record.uuid) == nil {
            order.append(record.uuid)
        }
        while entries.count > capacity, orderStart < order.count {
            entries[order[orderStart]] = nil
            orderStart += 1
        }
        // Compact the order list once its dead head is large.
        if orderStart > capacity {
            order.removeFirst(orderStart)
            orderStart = 0
            order.removeAll { entries[$0] == nil }
        }
    }

    mutating func remove(_ uuid: String) {
        entries[uuid] = nil
    }

    mutating func removeAll() {
        entries = [:]
        order = []
        orderStart = 0
    }

    private static func sameBytes(_ a: String, _ b: String) -> Bool {
        var a = a
        var b = b
        return a.withUTF8 { x in
            b.withUTF8 { y in
                x.count == y.count && (x.count == 0 || memcmp(x.baseAddress!, y.baseAddress!, x.count) == 0)
            }
        }
    }
}
