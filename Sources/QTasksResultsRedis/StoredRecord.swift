import Foundation
import QTasks

/// A ``TaskRecord`` as the `qtasks_record` hash field holds it: its JSON
/// form (``TaskRecord``'s `Codable`, the form of `qtasks result --json`),
/// plus one key of ours, `exact_times`, so that a read gives back the very
/// `Date`s that were written.
///
/// The JSON form has times as Unix seconds (a `Double`), but a `Date` is
/// seconds since 2001 (also a `Double`): converting one to the other rounds
/// away up to about 0.2 µs, so a `Date` read back from the JSON form may
/// not be `==` to the one written. `exact_times` holds the seconds since
/// 2001 of the record's times and of its events' times; a reader that does
/// not know the key (another program, QTasks) ignores it, and this store
/// uses each exact time only when it agrees with the JSON form's Unix
/// seconds (so that an edited record is read as edited).
///
/// ```json
/// {"uuid":"…", …, "exact_times":{"created_at":786740400.123,"updated_at":…,
///  "started_at":…,"finished_at":…,"events":[[786740400.124,786740400.123],[786740400.125]]}}
/// ```
struct StoredRecord: Codable {
    var record: TaskRecord

    init(_ record: TaskRecord) {
        self.record = record
    }

    private enum Keys: String, CodingKey {
        case exactTimes = "exact_times"
    }

    private struct ExactTimes: Codable {
        var createdAt: Double
        var updatedAt: Double
        var startedAt: Double?
        var finishedAt: Double?
        /// Per event: its timestamp, then its `created_at` when it has one.
        var events: [[Double]]

        enum CodingKeys: String, CodingKey {
            case events
            case createdAt = "created_at"
            case updatedAt = "updated_at"
            case startedAt = "started_at"
            case finishedAt = "finished_at"
        }
    }

    init(from decoder: any Decoder) throws {
        record = try TaskRecord(from: decoder)
        let container = try decoder.container(keyedBy: Keys.self)
        guard let exact = try? container.decodeIfPresent(ExactTimes.self, forKey: .exactTimes) else { return }
        record.createdAt = Self.exact(exact.createdAt, for: record.createdAt)
        record.updatedAt = Self.exact(exact.updatedAt, for: record.updatedAt)
        record.startedAt = record.startedAt.map { Self.exact(exact.startedAt, for: $0) }
        record.finishedAt = record.finishedAt.map { Self.exact(exact.finishedAt, for: $0) }
        guard exact.events.count == record.events.count else { return }
        for index in record.events.indices {
            let times = exact.events[index]
            record.events[index].timestamp = Self.exact(times.first, for: record.events[index].timestamp)
            record.events[index].createdAt = record.events[index].createdAt.map {
                Self.exact(times.count > 1 ? times[1] : nil, for: $0)
            }
        }
    }

    func encode(to encoder: any Encoder) throws {
        try record.encode(to: encoder)
        var container = encoder.container(keyedBy: Keys.self)
        let exact = ExactTimes(
            createdAt: record.createdAt.timeIntervalSinceReferenceDate,
            updatedAt: record.updatedAt.timeIntervalSinceReferenceDate,
            startedAt: record.startedAt?.timeIntervalSinceReferenceDate,
            finishedAt: record.finishedAt?.timeIntervalSinceReferenceDate,
            events: record.events.map { event in
                [event.timestamp.timeIntervalSinceReferenceDate] + (event.createdAt.map { [$0.timeIntervalSinceReferenceDate] } ?? [])
            })
        try container.encode(exact, forKey: .exactTimes)
    }

    /// The exact time when it is the one the JSON form's Unix seconds came
    /// from, else the JSON form's.
    private static func exact(_ reference: Double?, for decoded: Date) -> Date {
        guard let reference else { return decoded }
        let candidate = Date(timeIntervalSinceReferenceDate: reference)
        return candidate.timeIntervalSince1970 == decoded.timeIntervalSince1970 ? candidate : decoded
    }
}
