import Foundation
import QTasks
import QTasksScheduler
import QTasksState

/// `/api/schedules` and `/api/state`: read-only views of the State store.
extension DashboardAPI {
    static let stateListLimit = 1_000

    private func stateStore() throws -> any StateStore {
        guard let store = configuration.stateStore else { throw APIError.unavailable("no State store configured") }
        return store
    }

    private func stateCall<T>(_ body: () async throws -> T) async throws -> T {
        do {
            return try await body()
        } catch let error as APIError {
            throw error
        } catch {
            throw APIError.unavailable("State store: \(error)")
        }
    }

    func schedules() async throws -> JSONValue {
        guard let store = configuration.stateStore else {
            return .object(["available": false, "error": .string("no State store configured"), "entries": .array([])])
        }
        let statuses = try await stateCall { try await Scheduler.statuses(in: store) }
        return .object([
            "available": true, "error": .null,
            "entries": .array(
                statuses.map { status in
                    .object([
                        "name": .string(status.name), "task_name": .optional(status.taskName),
                        "queue": .optional(status.queue), "schedule": .optional(status.schedule),
                        "last_tick": status.lastTick.map { .int($0) } ?? .null,
                        "next_tick": status.nextTick.map { .int($0) } ?? .null,
                        "last_submitted_by": .optional(status.lastSubmittedBy),
                        "last_submitted_at": .optional(status.lastSubmittedAt),
                    ] as [String: JSONValue])
                }),
        ])
    }

    func stateNamespaces() async throws -> JSONValue {
        let store = try stateStore()
        let names = try await stateCall { try await store.namespaces(limit: Self.stateListLimit + 1) }
        return .object([
            "available": true, "namespaces": .array(names.prefix(Self.stateListLimit).map(JSONValue.string)),
            "truncated": .bool(names.count > Self.stateListLimit),
        ])
    }

    func stateKeys(in namespace: String) async throws -> JSONValue {
        let store = try stateStore()
        let keys = try await stateCall { try await store.keys(in: namespace, limit: Self.stateListLimit + 1) }
        return .object([
            "namespace": .string(namespace), "keys": .array(keys.prefix(Self.stateListLimit).map { $0.map(JSONValue.string) ?? .null }),
            "truncated": .bool(keys.count > Self.stateListLimit),
        ])
    }

    /// The fields of a state; `key` nil: the namespace's keyless state.
    func stateFields(namespace: String, key: String?) async throws -> JSONValue {
        let store = try stateStore()
        let id = StateID(namespace: namespace, key: key)
        let fields = try await stateCall { try await store.getAll(in: id) }
        return .object(["namespace": .string(namespace), "key": .optional(key), "fields": .object(fields)])
    }
}
