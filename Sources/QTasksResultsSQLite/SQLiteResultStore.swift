import QTasks

// PLACEHOLDER for the SQLite helper: replace this file.
public final class SQLiteResultStore: ResultStore {
    public static func open(path: String, configuration: ResultStoreConfiguration) async throws -> SQLiteResultStore {
        throw ResultStoreError(.unavailable, "SQLite result store: not written yet")
    }
    public func record(_ events: [TaskEvent]) async throws {}
    public func recordHeartbeat(_ heartbeat: WorkerHeartbeat) async throws {}
    public func record(for uuid: String) async throws -> TaskRecord? { nil }
    public func records(matching query: TaskRecordQuery) async throws -> [TaskRecord] { [] }
    public func liveWorkers() async throws -> [WorkerHeartbeat] { [] }
    public func close() async {}
}
