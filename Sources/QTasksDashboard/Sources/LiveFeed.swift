import Foundation
import Logging
import QTasks

/// The counts behind the charts and the live updates, made once per
/// ``DashboardConfiguration/liveUpdateInterval`` for every open page
/// together.
///
/// Its cost does not grow with the task rate: each sample is one
/// `liveWorkers()` and one query of the 50 most recently updated records.
/// Throughput comes from the workers' heartbeat counters (processed,
/// failed, retried: the deltas between two heartbeats, like a Prometheus
/// `rate()`), so it is exact at any rate; the hour before the dashboard
/// started is read once from the store's records (at most
/// ``backfillLimit``).
actor LiveFeed {
    struct Bucket: Sendable {
        var succeeded = 0
        var failed = 0
        var retried = 0
        var deadLettered = 0
    }

    static let bucketSeconds: Int64 = 60
    static let bucketCount = 60
    static let backfillLimit = 20_000
    static let recentLimit = 50

    private let startedAt = Date()
    private var buckets: [Int64: Bucket] = [:]
    /// The last counters of each worker seen in the last hour: a worker
    /// whose heartbeat lapsed and came back is counted from where it was,
    /// not from its new totals.
    private var counters: [String: (processed: Int, failed: Int, retried: Int, seen: Date)] = [:]
    /// The time of each worker's first sampled heartbeat: its counters
    /// count from then on.
    private var baselines: [String: Date] = [:]
    /// uuid → updatedAt of the records the last sample saw.
    private var seen: [String: Date] = [:]
    private var deadLetteredSeen: [String: Date] = [:]
    private var lastSample: Date?
    private var workerCounts = (online: 0, stale: 0)
    private var subscribers: [Int: AsyncStream<String>.Continuation] = [:]
    private var nextSubscriber = 0
    private var finished = false

    /// Counts the finished records of the hour before each live worker's
    /// first sampled heartbeat (from then on its counters count), and
    /// those of workers no longer alive before the dashboard started: so
    /// no task is counted twice. Call after the first ``sample(from:now:)``.
    func backfill(from store: any ResultStore) async throws {
        let since = startedAt.addingTimeInterval(-Double(Self.bucketSeconds) * Double(Self.bucketCount))
        let records = try await store.records(
            matching: TaskRecordQuery(statuses: [.success, .error], since: since, limit: Self.backfillLimit))
        for record in records {
            let time = record.finishedAt ?? record.updatedAt
            let cutoff = record.workerID.flatMap { baselines[$0] } ?? startedAt
            guard time <= cutoff else { continue }
            if record.status == .success { add(at: time) { $0.succeeded += 1 } }
            if record.status == .error { add(at: time) { $0.failed += 1 } }
            if record.deadLetterQueue != nil, deadLetteredSeen[record.uuid] == nil {
                add(at: time) { $0.deadLettered += 1 }
                deadLetteredSeen[record.uuid] = time
            }
            for event in record.events where event.kind == .retried && event.timestamp <= cutoff {
                add(at: event.timestamp) { $0.retried += 1 }
            }
        }
    }

    /// Takes one sample and sends the update to every subscriber.
    func sample(from store: any ResultStore, now: Date = Date()) async throws {
        let workers = try await store.liveWorkers()
        var alive = Set<String>()
        var online = 0
        var stale = 0
        for worker in workers {
            alive.insert(worker.workerID)
            if JSONShapes.isStale(worker, now: now) { stale += 1 } else { online += 1 }
            let previous: (processed: Int, failed: Int, retried: Int) =
                counters[worker.workerID].map { ($0.processed, $0.failed, $0.retried) }
                // A worker first seen: count what it did since the
                // dashboard started, nothing before (the backfill has it).
                ?? (worker.startedAt >= startedAt ? (0, 0, 0) : (worker.processed, worker.failed, worker.retried))
            let processed = max(0, worker.processed - previous.processed)
            let failed = max(0, worker.failed - previous.failed)
            let retried = max(0, worker.retried - previous.retried)
            if processed + failed + retried > 0 {
                add(at: worker.sentAt) {
                    $0.succeeded += max(0, processed - failed - retried)
                    $0.failed += failed
                    $0.retried += retried
                }
            }
            counters[worker.workerID] = (worker.processed, worker.failed, worker.retried, now)
            if baselines[worker.workerID] == nil {
                baselines[worker.workerID] = worker.startedAt >= startedAt ? worker.startedAt : worker.sentAt
            }
        }
        let forgotten = now.addingTimeInterval(-Double(Self.bucketSeconds) * Double(Self.bucketCount))
        counters = counters.filter { $0.value.seen >= forgotten }
        baselines = baselines.filter { counters[$0.key] != nil }
        workerCounts = (online, stale)

        // The newest records: those that changed since the last sample.
        let since = (lastSample ?? now.addingTimeInterval(-60)).addingTimeInterval(-2)
        let records = try await store.records(matching: TaskRecordQuery(since: since, limit: Self.recentLimit))
        lastSample = now
        var changed: [TaskRecord] = []
        var nowSeen: [String: Date] = [:]
        for record in records {
            nowSeen[record.uuid] = record.updatedAt
            if seen[record.uuid] != record.updatedAt { changed.append(record) }
            if record.deadLetterQueue != nil, deadLetteredSeen[record.uuid] == nil {
                deadLetteredSeen[record.uuid] = record.updatedAt
                add(at: record.updatedAt) { $0.deadLettered += 1 }
            }
        }
        seen = nowSeen
        prune(now: now)
        publish(update(now: now, recent: changed))
    }

    /// Sends the current counts with no task changes: when there is no
    /// store or it failed, so that open streams still get a write a
    /// second (and a client that left is noticed).
    func publishIdle(now: Date = Date()) {
        prune(now: now)
        publish(update(now: now, recent: []))
    }

    /// `last_hour` and `chart` of `/api/overview`.
    func overview(now: Date = Date()) -> (lastHour: JSONValue, chart: JSONValue, workers: (online: Int, stale: Int)) {
        let current = Self.minute(of: now)
        let start = current - Self.bucketSeconds * Int64(Self.bucketCount - 1)
        var succeeded: [JSONValue] = []
        var failed: [JSONValue] = []
        for index in 0..<Self.bucketCount {
            let bucket = buckets[start + Int64(index) * Self.bucketSeconds] ?? Bucket()
            succeeded.append(.int(Int64(bucket.succeeded)))
            failed.append(.int(Int64(bucket.failed)))
        }
        let chart: JSONValue = .object([
            "bucket_seconds": .int(Self.bucketSeconds), "start": .int(start),
            "succeeded": .array(succeeded), "failed": .array(failed),
        ])
        return (lastHour(from: start), chart, workerCounts)
    }

    private func lastHour(from start: Int64) -> JSONValue {
        var total = Bucket()
        for (minute, bucket) in buckets where minute >= start {
            total.succeeded += bucket.succeeded
            total.failed += bucket.failed
            total.retried += bucket.retried
            total.deadLettered += bucket.deadLettered
        }
        return .object([
            "succeeded": .int(Int64(total.succeeded)), "failed": .int(Int64(total.failed)),
            "retried": .int(Int64(total.retried)), "dead_lettered": .int(Int64(total.deadLettered)),
        ])
    }

    private func update(now: Date, recent: [TaskRecord]) -> String {
        let current = Self.minute(of: now)
        let start = current - Self.bucketSeconds * Int64(Self.bucketCount - 1)
        let bucket = buckets[current] ?? Bucket()
        let update: JSONValue = .object([
            "generated_at": .time(now),
            "last_hour": lastHour(from: start),
            "chart_tail": .object([
                "start": .int(current), "succeeded": .int(Int64(bucket.succeeded)), "failed": .int(Int64(bucket.failed)),
            ]),
            "workers": .object(["online": .int(Int64(workerCounts.online)), "stale": .int(Int64(workerCounts.stale))]),
            "recent": .array(recent.map(JSONShapes.taskSummary)),
        ])
        return update.description
    }

    // MARK: Subscribers

    /// A stream of update texts (the newest only, when a reader is slow),
    /// and its id for ``unsubscribe(_:)``; nil when `limit` are open.
    func subscribe(limit: Int) -> (id: Int, updates: AsyncStream<String>)? {
        guard !finished, subscribers.count < limit else { return nil }
        let (stream, continuation) = AsyncStream<String>.makeStream(bufferingPolicy: .bufferingNewest(1))
        let id = nextSubscriber
        nextSubscriber += 1
        subscribers[id] = continuation
        return (id, stream)
    }

    func unsubscribe(_ id: Int) {
        subscribers.removeValue(forKey: id)?.finish()
    }

    var subscriberCount: Int { subscribers.count }

    /// Ends every stream (the dashboard is stopping).
    func finish() {
        finished = true
        for continuation in subscribers.values { continuation.finish() }
        subscribers.removeAll()
    }

    private func publish(_ text: String) {
        for continuation in subscribers.values { continuation.yield(text) }
    }

    // MARK: Buckets

    static func minute(of date: Date) -> Int64 {
        let seconds = Int64(date.timeIntervalSince1970.rounded(.down))
        return seconds - seconds % bucketSeconds
    }

    private func add(at date: Date, _ change: (inout Bucket) -> Void) {
        change(&buckets[Self.minute(of: date), default: Bucket()])
    }

    private func prune(now: Date) {
        let oldest = Self.minute(of: now) - Self.bucketSeconds * Int64(Self.bucketCount)
        buckets = buckets.filter { $0.key >= oldest }
        let horizon = now.addingTimeInterval(-Double(Self.bucketSeconds) * Double(Self.bucketCount))
        deadLetteredSeen = deadLetteredSeen.filter { $0.value >= horizon }
    }
}
