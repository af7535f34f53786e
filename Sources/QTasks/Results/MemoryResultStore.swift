import Foundation
import Synchronization

/// A result store in this process's memory: for tests and for a worker
/// and its producers in one process. Same rules as the durable backends
/// (time-to-live, bound on finished records), nothing survives the process.
public final class MemoryResultStore: ResultStore, CustomStringConvertible {
    private struct State {
        var records: [String: TaskRecord] = [:]
        var heartbeats: [String: WorkerHeartbeat] = [:]
        var closed = false
    }

    private let state = Mutex(State())
    /// Joins, step ends and workflow records (``WorkflowStore``).
    private let workflows = Mutex(MemoryWorkflowState())
    public let configuration: ResultStoreConfiguration
    /// The clock records expire by; tests move it.
    private let now: @Sendable () -> Date

    public init(configuration: ResultStoreConfiguration = ResultStoreConfiguration(), now: @escaping @Sendable () -> Date = Date.init) {
        self.configuration = configuration
        self.now = now
    }

    public var description: String { "MemoryResultStore" }

    public func record(_ events: [TaskEvent]) async throws {
        let ttl = Seconds.double(configuration.timeToLive)
        let now = now()
        try state.withLock { state in
            guard !state.closed else { throw ResultStoreError(.closed, "the memory result store is closed") }
            for event in events where !event.uuid.isEmpty {
                if var record = state.records[event.uuid], record.updatedAt.addingTimeInterval(ttl) > now {
                    record.apply(event, maxEvents: configuration.maxEventsPerRecord)
                    state.records[event.uuid] = record
                } else {
                    state.records[event.uuid] = TaskRecord(first: event, maxEvents: configuration.maxEventsPerRecord)
                }
            }
            Self.trim(&state, configuration: configuration, now: now)
        }
    }

    public func recordHeartbeat(_ heartbeat: WorkerHeartbeat) async throws {
        try state.withLock { state in
            guard !state.closed else { throw ResultStoreError(.closed, "the memory result store is closed") }
            if heartbeat.isOnline {
                state.heartbeats[heartbeat.workerID] = heartbeat
            } else {
                state.heartbeats[heartbeat.workerID] = nil
            }
        }
    }

    public func record(for uuid: String) async throws -> TaskRecord? {
        let ttl = Seconds.double(configuration.timeToLive)
        let now = now()
        return try state.withLock { state in
            guard !state.closed else { throw ResultStoreError(.closed, "the memory result store is closed") }
            guard let record = state.records[uuid], record.updatedAt.addingTimeInterval(ttl) > now else { return nil }
            return record
        }
    }

    public func records(matching query: TaskRecordQuery) async throws -> [TaskRecord] {
        let ttl = Seconds.double(configuration.timeToLive)
        let now = now()
        return try state.withLock { state in
            guard !state.closed else { throw ResultStoreError(.closed, "the memory result store is closed") }
            let live = state.records.values.filter { $0.updatedAt.addingTimeInterval(ttl) > now && query.matches($0) }
            let sorted = live.sorted { ($0.updatedAt, $0.uuid) > ($1.updatedAt, $1.uuid) }
            return Array(sorted.dropFirst(max(0, query.offset)).prefix(max(0, query.limit)))
        }
    }

    public func liveWorkers() async throws -> [WorkerHeartbeat] {
        let now = now()
        return try state.withLock { state in
            guard !state.closed else { throw ResultStoreError(.closed, "the memory result store is closed") }
            return state.heartbeats.values.filter { $0.expiresAt > now }.sorted { $0.workerID < $1.workerID }
        }
    }

    public func close() async {
        state.withLock { $0.closed = true }
    }

    func withWorkflows<T>(_ body: (inout MemoryWorkflowState) throws -> T) throws -> T {
        guard !state.withLock({ $0.closed }) else { throw ResultStoreError(.closed, "the memory result store is closed") }
        return try workflows.withLock { try body(&$0) }
    }

    /// Drops expired records, then the oldest finished ones past the bound.
    private static func trim(_ state: inout State, configuration: ResultStoreConfiguration, now: Date) {
        let ttl = Seconds.double(configuration.timeToLive)
        state.records = state.records.filter { $0.value.updatedAt.addingTimeInterval(ttl) > now }
        let finished = state.records.values.filter(\.isFinished)
        let excess = finished.count - max(0, configuration.maxRecords)
        guard excess > 0 else { return }
        for record in finished.sorted(by: { ($0.updatedAt, $0.uuid) < ($1.updatedAt, $1.uuid) }).prefix(excess) {
            state.records[record.uuid] = nil
        }
    }
}
