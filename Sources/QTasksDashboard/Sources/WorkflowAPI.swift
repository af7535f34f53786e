import Foundation
import QTasks

/// `/api/workflows` and `/api/workflows/<id>`: read-only views of the
/// workflows the result store keeps (docs/workflows.md, ``WorkflowStore``).
extension DashboardAPI {
    /// The most members of each group `/api/workflows/<id>` shows.
    static let maxWorkflowMembers = 1_000
    /// How many workflows a status filter reads at most, newest first.
    static let workflowScanLimit = 10_000
    static let workflowScanBatch = 200
    /// The statuses a workflow's record has.
    static let workflowStatuses: [TaskStatus] = [.process, .success, .error, .cancel]

    /// The result store and the same store as a ``WorkflowStore``; 503 with
    /// an error saying what is missing otherwise.
    private func workflowStores() throws -> (records: any ResultStore, workflows: any WorkflowStore) {
        guard let store = configuration.resultStore else {
            throw APIError.unavailable("no result store configured: workflows are kept in the workers' result store")
        }
        guard let workflows = store as? any WorkflowStore else {
            throw APIError.unavailable(
                "the result store keeps no workflows: workflows need a result store that does (SQLite, Redis or memory)")
        }
        return (store, workflows)
    }

    private func workflowCall<T>(_ body: () async throws -> T) async throws -> T {
        do {
            return try await body()
        } catch let error as APIError {
            throw error
        } catch {
            throw APIError.unavailable("result store: \(error)")
        }
    }

    /// `/api/workflows?limit=&offset=&status=`: the most recently updated
    /// first. With `status`, `offset` counts matching workflows, and at
    /// most ``workflowScanLimit`` of the newest are read
    /// (`scan_truncated` says when more were left unread).
    func workflows(_ parameters: [String: [String]]) async throws -> JSONValue {
        let (_, workflows) = try workflowStores()
        func one(_ key: String) -> String? { parameters[key]?.last.flatMap { $0.isEmpty ? nil : $0 } }
        func integer(_ key: String) throws -> Int? {
            guard let text = one(key) else { return nil }
            guard let value = Int(text) else { throw APIError.badRequest("\(key) must be a whole number") }
            return value
        }
        let limit = try integer("limit") ?? 50
        let offset = try integer("offset") ?? 0
        guard (1...500).contains(limit) else { throw APIError.badRequest("limit must be 1 to 500") }
        guard offset >= 0 else { throw APIError.badRequest("offset must be 0 or more") }
        var statuses: Set<TaskStatus>?
        let given = (parameters["status"] ?? []).flatMap { $0.split(separator: ",").map(String.init) }.filter { !$0.isEmpty }
        if !given.isEmpty {
            statuses = []
            for text in given {
                guard let status = Self.workflowStatuses.first(where: { $0.rawValue == text }) else {
                    throw APIError.badRequest(
                        "unknown status \(text): one of \(Self.workflowStatuses.map(\.rawValue).joined(separator: ", "))")
                }
                statuses?.insert(status)
            }
        }
        return try await workflowCall {
            var page: [WorkflowRecord]
            var scanTruncated = false
            if let statuses {
                // Read the newest in batches until the page (and one more, for
                // has_more) is found, or the scan limit is reached.
                var matches: [WorkflowRecord] = []
                var read = 0
                while matches.count < offset + limit + 1 {
                    guard read < Self.workflowScanLimit else {
                        scanTruncated = true
                        break
                    }
                    let batch = try await workflows.workflowRecords(
                        limit: min(Self.workflowScanBatch, Self.workflowScanLimit - read), offset: read)
                    read += batch.count
                    matches += batch.filter { statuses.contains($0.status) }
                    if batch.count < Self.workflowScanBatch { break }
                }
                page = Array(matches.dropFirst(offset))
            } else {
                guard offset <= Int.max - limit - 1 else { throw APIError.badRequest("offset is too large") }
                page = try await workflows.workflowRecords(limit: limit + 1, offset: offset)
            }
            let hasMore = page.count > limit
            page = Array(page.prefix(limit))
            return .object([
                "workflows": .array(page.map(JSONShapes.workflowSummary)), "limit": .int(Int64(limit)),
                "offset": .int(Int64(offset)), "has_more": .bool(hasMore), "scan_truncated": .bool(scanTruncated),
            ])
        }
    }

    /// `/api/workflows/<id>?members=50`: the record and its tree, each
    /// step's status read from the store, at most `members` members of
    /// each group.
    func workflow(_ id: String, members: Int) async throws -> JSONValue {
        let (records, workflows) = try workflowStores()
        try Self.refuseControlCharacters(id, "a workflow id")
        guard (0...Self.maxWorkflowMembers).contains(members) else {
            throw APIError.badRequest("members must be 0 to \(Self.maxWorkflowMembers)")
        }
        return try await workflowCall {
            guard let record = try await workflows.workflowRecord(for: id) else {
                throw APIError.notFound("no workflow \(id) (not started by a worker with this result store, or expired)")
            }
            let tree = try await WorkflowTreeNode.load(record.root, records: records, workflows: workflows, maxMembers: members)
            return .object([
                "workflow": JSONShapes.workflowSummary(record), "members": .int(Int64(members)),
                "tree": JSONShapes.workflowTree(tree),
            ])
        }
    }
}

extension JSONShapes {
    /// A row of `/api/workflows`, and `workflow` of `/api/workflows/<id>`.
    static func workflowSummary(_ record: WorkflowRecord) -> JSONValue {
        .object([
            "id": .string(record.id), "status": .string(record.status.rawValue), "policy": .string(record.policy.rawValue),
            "created_at": .time(record.createdAt), "updated_at": .time(record.updatedAt),
            "tasks": .int(Int64(record.root.taskCount)), "result": record.result ?? .null, "error": .optional(record.error),
        ])
    }

    /// `tree` of `/api/workflows/<id>`: every field of a node's kind, null
    /// when unknown.
    static func workflowTree(_ node: WorkflowTreeNode) -> JSONValue {
        switch node.kind {
        case .task:
            return .object([
                "kind": "task", "task_name": .optional(node.taskName), "uuid": .optional(node.uuid),
                "status": .optional(node.status?.rawValue), "error": .optional(node.error),
            ])
        case .chain:
            return .object([
                "kind": "chain", "error": .optional(node.error), "children": .array(node.children.map(workflowTree)),
            ])
        case .group:
            return .object([
                "kind": "group", "id": .optional(node.uuid), "error": .optional(node.error),
                "window": .optional(node.window), "total": .optional(node.total),
                "settled": .optional(node.settled), "failed": .optional(node.failed),
                "halted": node.halted.map(JSONValue.bool) ?? .null, "completed": node.completed.map(JSONValue.bool) ?? .null,
                "children": .array(node.children.map(workflowTree)), "omitted": .int(Int64(node.omitted)),
            ])
        }
    }
}
