import Foundation
import Hummingbird
import Logging
import QTasks
import Synchronization
import Testing
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

@testable import QTasksDashboard

/// `/api/workflows` and `/api/workflows/<id>` on a memory store, the
/// workflow and its join recorded through the ``WorkflowStore`` API as a
/// worker records them.
struct WorkflowAPITests {
    /// A result store that keeps no workflows: only ``ResultStore``.
    struct PlainStore: ResultStore {
        let store = MemoryResultStore()
        func record(_ events: [TaskEvent]) async throws { try await store.record(events) }
        func recordHeartbeat(_ heartbeat: WorkerHeartbeat) async throws { try await store.recordHeartbeat(heartbeat) }
        func record(for uuid: String) async throws -> TaskRecord? { try await store.record(for: uuid) }
        func records(matching query: TaskRecordQuery) async throws -> [TaskRecord] { try await store.records(matching: query) }
        func liveWorkers() async throws -> [WorkerHeartbeat] { try await store.liveWorkers() }
        func close() async { await store.close() }
    }

    static func task(_ name: String, _ uuid: String) -> WorkflowStep {
        .task(WorkflowTask(taskName: name, uuid: uuid))
    }

    /// `chain(group(add t-1, fail t-2, chain(add t-3, add t-4)), echo t-5)`
    /// under all_settled: t-1 succeeded, t-2 failed, the inner chain has
    /// not ended; and an older-updated finished workflow `wf-new` made of
    /// one task.
    static func seeded() async throws -> MemoryResultStore {
        let store = MemoryResultStore()
        let members: [WorkflowStep] = [
            task("add", "t-1"), task("fail", "t-2"), .chain([task("add", "t-3"), task("add", "t-4")]),
        ]
        let root = WorkflowStep.chain([.group(id: "g-1", members: members, window: 2), task("echo", "t-5")])
        try await store.recordWorkflow(
            WorkflowRecord(
                id: "wf-1", policy: .allSettled, root: root, createdAt: Date(timeIntervalSince1970: 1_000),
                updatedAt: Date(timeIntervalSince1970: 1_000)))
        try await store.recordWorkflow(
            WorkflowRecord(
                id: "wf-new", policy: .failFast, root: task("add", "t-9"), status: .success, result: 7,
                createdAt: Date(timeIntervalSince1970: 2_000), updatedAt: Date(timeIntervalSince1970: 2_000)))
        let join = WorkflowJoin(
            id: "g-1", workflowID: "wf-1", policy: .allSettled, replyTo: nil, members: members, window: 2, input: nil,
            queue: "default", next: [task("echo", "t-5")], parent: nil)
        let started = try await store.openJoin(join)
        #expect(started == [0, 1])
        _ = try await store.settleMember(JoinMembership(id: "g-1", index: 0), outcome: WorkflowMemberResult(status: .success, returning: 3))
        _ = try await store.settleMember(
            JoinMembership(id: "g-1", index: 1), outcome: WorkflowMemberResult(status: .error, error: "ValueError: boom"))
        try await store.record([
            TaskEvent(kind: .succeeded, uuid: "t-1", taskName: "add", queue: "default", attempt: 1, workerID: "w", result: 3),
            TaskEvent(
                kind: .failed, uuid: "t-2", taskName: "fail", queue: "default", attempt: 1, workerID: "w",
                failure: TaskEvent.Failure(type: "ValueError", message: "boom", traceback: "")),
            TaskEvent(kind: .started, uuid: "t-3", taskName: "add", queue: "default", attempt: 1, workerID: "w"),
        ])
        return store
    }

    static func api(_ store: (any ResultStore)?) -> DashboardAPI {
        DashboardAPI(configuration: DashboardConfiguration(resultStore: store), logger: Logger(label: "test"))
    }

    static func apiError(_ body: () async throws -> JSONValue) async -> APIError? {
        do {
            _ = try await body()
            return nil
        } catch let error as APIError {
            return error
        } catch {
            Issue.record("not an APIError: \(error)")
            return nil
        }
    }

    @Test func theListNewestFirstWithPagingAndStatus() async throws {
        let api = Self.api(try await Self.seeded())
        let all = try await api.workflows([:])
        let ids = all["workflows"]?.arrayValue?.map { $0["id"]?.stringValue }
        #expect(ids == ["wf-new", "wf-1"], "\(all)")
        #expect(all["has_more"] == false && all["limit"]?.intValue == 50, "\(all)")
        let first = try #require(all["workflows"]?.arrayValue?.last)
        #expect(first["status"]?.stringValue == "process" && first["policy"]?.stringValue == "all_settled", "\(first)")
        #expect(first["tasks"]?.intValue == 5 && first["created_at"]?.doubleValue == 1_000, "\(first)")
        #expect(first["result"] == .null && first["error"] == .null, "\(first)")
        let newest = try #require(all["workflows"]?.arrayValue?.first)
        #expect(newest["result"]?.intValue == 7 && newest["tasks"]?.intValue == 1, "\(newest)")

        let one = try await api.workflows(["limit": ["1"]])
        #expect(one["workflows"]?.arrayValue?.map { $0["id"]?.stringValue } == ["wf-new"] && one["has_more"] == true, "\(one)")
        let second = try await api.workflows(["limit": ["1"], "offset": ["1"]])
        #expect(second["workflows"]?.arrayValue?.map { $0["id"]?.stringValue } == ["wf-1"] && second["has_more"] == false, "\(second)")

        let running = try await api.workflows(["status": ["process"]])
        #expect(running["workflows"]?.arrayValue?.map { $0["id"]?.stringValue } == ["wf-1"], "\(running)")
        let both = try await api.workflows(["status": ["process,success"], "limit": ["1"]])
        #expect(both["workflows"]?.arrayValue?.map { $0["id"]?.stringValue } == ["wf-new"] && both["has_more"] == true, "\(both)")
        let failed = try await api.workflows(["status": ["error"]])
        #expect(failed["workflows"]?.arrayValue?.isEmpty == true && failed["scan_truncated"] == false, "\(failed)")

        for bad in [["status": ["exploded"]], ["limit": ["0"]], ["limit": ["501"]], ["offset": ["-1"]], ["limit": ["1e3"]]] {
            let error = await Self.apiError { try await api.workflows(bad) }
            #expect(error?.status == 400, "\(bad): \(String(describing: error))")
        }
    }

    @Test func theTreeWithEachStepsStatusAndTheGroupsProgress() async throws {
        let api = Self.api(try await Self.seeded())
        let answer = try await api.workflow("wf-1", members: 50)
        #expect(answer["workflow"]?["id"]?.stringValue == "wf-1" && answer["workflow"]?["tasks"]?.intValue == 5, "\(answer)")
        let tree = try #require(answer["tree"])
        #expect(tree["kind"]?.stringValue == "chain", "\(tree)")
        let steps = tree["children"]?.arrayValue ?? []
        #expect(steps.count == 2, "\(tree)")
        let group = try #require(steps.first)
        #expect(group["kind"]?.stringValue == "group" && group["id"]?.stringValue == "g-1" && group["window"]?.intValue == 2, "\(group)")
        #expect(group["total"]?.intValue == 3 && group["settled"]?.intValue == 2 && group["failed"]?.intValue == 1, "\(group)")
        #expect(group["halted"] == false && group["completed"] == false && group["omitted"]?.intValue == 0, "\(group)")
        let members = group["children"]?.arrayValue ?? []
        #expect(members.count == 3, "\(group)")
        #expect(members.first?["uuid"]?.stringValue == "t-1" && members.first?["status"]?.stringValue == "success", "\(members)")
        #expect(members.first?["error"] == .null, "\(members)")
        #expect(members.dropFirst().first?["status"]?.stringValue == "error", "\(members)")
        #expect(members.dropFirst().first?["error"]?.stringValue == "ValueError: boom", "the failed member's error: \(members)")
        let inner = try #require(members.last)
        #expect(inner["kind"]?.stringValue == "chain" && inner["error"] == .null, "\(inner)")
        #expect(inner["children"]?.arrayValue?.map { $0["status"] } == [.string("process"), .null], "\(inner)")
        let callback = try #require(steps.last)
        #expect(callback["task_name"]?.stringValue == "echo" && callback["status"] == .null, "not run yet: \(callback)")

        // At most `members` members of each group.
        let cut = try await api.workflow("wf-1", members: 1)
        let cutGroup = cut["tree"]?["children"]?.arrayValue?.first
        #expect(cutGroup?["children"]?.arrayValue?.count == 1 && cutGroup?["omitted"]?.intValue == 2, "\(cut)")
        #expect(cut["members"]?.intValue == 1)

        let missing = await Self.apiError { try await api.workflow("nope", members: 50) }
        #expect(missing?.status == 404 && missing?.message.contains("no workflow nope") == true, "\(String(describing: missing))")
        for (id, members) in [("wf-1", -1), ("wf-1", 1_001), ("wf\n1", 50)] {
            let error = await Self.apiError { try await api.workflow(id, members: members) }
            #expect(error?.status == 400, "\(id) \(members): \(String(describing: error))")
        }
    }

    @Test func aStoreWithoutWorkflowsOrNoStoreIsAClearError() async throws {
        let plain = Self.api(PlainStore())
        let list = await Self.apiError { try await plain.workflows([:]) }
        #expect(list?.status == 503 && list?.message.contains("keeps no workflows") == true, "\(String(describing: list))")
        let one = await Self.apiError { try await plain.workflow("wf-1", members: 50) }
        #expect(one?.status == 503 && one?.message.contains("keeps no workflows") == true, "\(String(describing: one))")
        let none = await Self.apiError { try await Self.api(nil).workflows([:]) }
        #expect(none?.status == 503 && none?.message.contains("no result store configured") == true, "\(String(describing: none))")
    }

    /// Over HTTP: the routes, the query parameters, the JSON errors, the
    /// pages, the security headers and the credentials.
    @Test(.timeLimit(.minutes(1))) func overHTTP() async throws {
        let store = try await Self.seeded()
        let dashboard = Dashboard(configuration: DashboardConfiguration(resultStore: store, authentication: .bearer(token: "tok")))
        let port = Mutex<Int?>(nil)
        let app = try dashboard.makeApplication(host: "127.0.0.1", port: 0) { bound in port.withLock { $0 = bound } }
        let server = Task { try await app.runService(gracefulShutdownSignals: []) }
        defer { server.cancel() }
        var bound: Int?
        for _ in 0..<200 where bound == nil {
            bound = port.withLock { $0 }
            if bound == nil { try await Task.sleep(for: .milliseconds(50)) }
        }
        let base = "http://127.0.0.1:\(try #require(bound))"
        let auth = ["Authorization": "Bearer tok"]

        let list = try await Self.get(base + "/api/workflows?limit=1", auth)
        #expect(list.status == 200 && list.json?["workflows"]?.arrayValue?.first?["id"]?.stringValue == "wf-new", "\(list.text)")
        #expect(list.headers["content-type"]?.hasPrefix("application/json") == true)
        let filtered = try await Self.get(base + "/api/workflows?status=process", auth)
        #expect(filtered.json?["workflows"]?.arrayValue?.map { $0["id"]?.stringValue } == ["wf-1"], "\(filtered.text)")
        let detail = try await Self.get(base + "/api/workflows/wf-1?members=1", auth)
        #expect(detail.status == 200 && detail.json?["tree"]?["children"]?[0]?["omitted"]?.intValue == 2, "\(detail.text)")
        let defaults = try await Self.get(base + "/api/workflows/wf-1", auth)
        #expect(defaults.json?["members"]?.intValue == 50, "\(defaults.text)")
        let missing = try await Self.get(base + "/api/workflows/no%20such", auth)
        #expect(missing.status == 404 && missing.json?["error"]?.stringValue?.contains("no workflow no such") == true, "\(missing.text)")
        let badMembers = try await Self.get(base + "/api/workflows/wf-1?members=abc", auth)
        #expect(badMembers.status == 400 && badMembers.json?["error"] != nil, "\(badMembers.text)")
        let badStatus = try await Self.get(base + "/api/workflows?status=nope", auth)
        #expect(badStatus.status == 400, "\(badStatus.text)")

        for path in ["/workflows", "/workflows/wf-1", "/workflows?status=error"] {
            let page = try await Self.get(base + path, auth)
            #expect(page.status == 200 && page.text.contains(#"data-nav="workflows""#), "\(path): \(page.text.prefix(200))")
            #expect(page.headers["content-security-policy"]?.contains("script-src 'self'") == true, "\(path)")
            #expect(page.headers["x-frame-options"] == "DENY", "\(path)")
        }
        let unauthenticated = try await Self.get(base + "/api/workflows/wf-1")
        #expect(unauthenticated.status == 401 && !unauthenticated.text.contains("g-1"), "\(unauthenticated.text)")
        let post = try await Self.get(base + "/api/workflows/wf-1", auth, method: "POST")
        #expect(post.status != 200, "read-only: \(post.status)")
    }

    static func get(_ url: String, _ headers: [String: String] = [:], method: String = "GET") async throws
        -> (status: Int, text: String, json: JSONValue?, headers: [String: String])
    {
        var request = URLRequest(url: URL(string: url)!)
        request.httpMethod = method
        for (name, value) in headers { request.setValue(value, forHTTPHeaderField: name) }
        let refuser = ChallengeRefuser()
        let session = URLSession(configuration: .ephemeral, delegate: refuser, delegateQueue: nil)
        defer { session.finishTasksAndInvalidate() }
        let data: Data
        let response: URLResponse
        do {
            (data, response) = try await session.data(for: request)
        } catch let error as URLError where error.code == .cancelled {
            // swift-corelibs-foundation hands a 401's challenge to the
            // delegate only; refused, the task is cancelled.
            guard refuser.challenged.withLock({ $0 }) else { throw error }
            return (401, "", nil, [:])
        }
        let http = response as? HTTPURLResponse
        var fields: [String: String] = [:]
        for (key, value) in http?.allHeaderFields ?? [:] { fields[String(describing: key).lowercased()] = String(describing: value) }
        return (http?.statusCode ?? 0, String(decoding: data, as: UTF8.self), try? JSONDecoder().decode(JSONValue.self, from: data), fields)
    }

    final class ChallengeRefuser: NSObject, URLSessionTaskDelegate, Sendable {
        let challenged = Mutex(false)

        func urlSession(
            _ session: URLSession, task: URLSessionTask, didReceive challenge: URLAuthenticationChallenge,
            completionHandler: @escaping @Sendable (URLSession.AuthChallengeDisposition, URLCredential?) -> Void
        ) {
            challenged.withLock { $0 = true }
            completionHandler(.cancelAuthenticationChallenge, nil)
        }
    }
}
