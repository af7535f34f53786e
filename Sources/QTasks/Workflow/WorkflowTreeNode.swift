/// A workflow's tree with each step's status, for `qtasks workflow` and
/// the dashboard (``WorkflowTreeNode/load(_:records:workflows:maxMembers:)``).
///
/// JSON: `{"kind": "task", "task_name", "uuid", "status", "error"}`,
/// `{"kind": "chain", "children": […]}`, `{"kind": "group", "id",
/// "window", "progress": JoinProgress without members, "children": […],
/// "omitted": N}`.
public struct WorkflowTreeNode: Sendable, Hashable, Codable {
    public enum Kind: String, Sendable, Hashable, Codable { case task, chain, group }

    public var kind: Kind
    public var taskName: String?
    /// A task's uuid, a group's id.
    public var uuid: String?
    /// A task's status from its record (nil when the store has none: not
    /// run yet, or not recorded).
    public var status: TaskStatus?
    /// A group member's error, when it failed.
    public var error: String?
    public var window: Int?
    public var total: Int?
    public var settled: Int?
    public var failed: Int?
    public var halted: Bool?
    public var completed: Bool?
    public var children: [WorkflowTreeNode]
    /// Members left out past the limit.
    public var omitted: Int

    private enum CodingKeys: String, CodingKey {
        case kind, uuid, status, error, window, total, settled, failed, halted, completed, children, omitted
        case taskName = "task_name"
    }

    init(kind: Kind, children: [WorkflowTreeNode] = []) {
        self.kind = kind
        self.children = children
        self.omitted = 0
    }

    /// The tree of `root`, each task's status read from `records`, each
    /// group's progress from `workflows`; at most `maxMembers` members of
    /// each group.
    ///
    /// - Throws: ``ResultStoreError``.
    public static func load(
        _ root: WorkflowStep, records: any ResultStore, workflows: any WorkflowStore, maxMembers: Int = 20
    ) async throws -> WorkflowTreeNode {
        switch root {
        case .task(let task):
            var node = WorkflowTreeNode(kind: .task)
            node.taskName = task.taskName
            node.uuid = task.uuid
            node.status = try await records.record(for: task.uuid)?.status
            return node
        case .chain(let steps):
            var children: [WorkflowTreeNode] = []
            for step in steps {
                children.append(try await load(step, records: records, workflows: workflows, maxMembers: maxMembers))
            }
            return WorkflowTreeNode(kind: .chain, children: children)
        case .group(let id, let members, let window):
            var node = WorkflowTreeNode(kind: .group)
            node.uuid = id
            node.window = window
            node.total = members.count
            let progress = try await workflows.joinProgress(id)
            if let progress {
                node.settled = progress.settled
                node.failed = progress.failed
                node.halted = progress.halted
                node.completed = progress.completed
            }
            for (index, member) in members.prefix(max(0, maxMembers)).enumerated() {
                var child = try await load(member, records: records, workflows: workflows, maxMembers: maxMembers)
                if let outcome = progress?.members[index], !outcome.succeeded { child.error = outcome.error ?? outcome.status.rawValue }
                node.children.append(child)
            }
            node.omitted = max(0, members.count - max(0, maxMembers))
            return node
        }
    }

    /// The tree as indented text lines, as `qtasks workflow` prints it.
    public func lines(indent: String = "") -> [String] {
        switch kind {
        case .task:
            // No record: not run yet, or its events are not written yet
            // (workers write them within about 100 ms).
            var line = "\(indent)\(taskName ?? "?")  \(status?.rawValue ?? "(no record yet)")  \(uuid ?? "")"
            if let error { line += "  (\(error))" }
            return [line]
        case .chain:
            return ["\(indent)chain (\(children.count) steps)"] + children.flatMap { $0.lines(indent: indent + "  ") }
        case .group:
            var head = "\(indent)group (\(total ?? 0) members\(window.map { ", at most \($0) at once" } ?? ""))"
            if let settled {
                head += "  \(settled)/\(total ?? 0) ended, \(failed ?? 0) failed"
                if halted == true { head += ", halted (fail fast)" }
                if completed == true { head += ", complete" }
            } else {
                head += "  not started"
            }
            var lines = [head, "\(indent)  id \(uuid ?? "")"]
            lines += children.flatMap { $0.lines(indent: indent + "  ") }
            if omitted > 0 { lines.append("\(indent)  … \(omitted) more") }
            return lines
        }
    }
}
