import QTasks

// PLACEHOLDER for the Redis helper: replace this file.
public final class RedisResultStore: ResultStore {
    public static func open(url: String, configuration: ResultStoreConfiguration) async throws -> RedisResultStore {
        throw ResultStoreError(.unavailable, "Redis result store: not written yet")
    }
    public func record(_ events: [TaskEvent]) async throws {}
    public func recordHeartbeat(_ heartbeat: WorkerHeartbeat) async throws {}
    public func record(for uuid: String) async throws -> TaskRecord? { nil }
    public func records(matching query: TaskRecordQuery) async throws -> [TaskRecord] { [] }
    public func liveWorkers() async throws -> [WorkerHeartbeat] { [] }
    public func close() async {}
}
