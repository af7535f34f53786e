import Foundation
import HTTPTypes
import Hummingbird
import QTasks
import Testing

@testable import QTasksDashboard

struct AuthenticationTests {
    static func basic(_ user: String, _ password: String) -> String {
        "Basic " + Data("\(user):\(password)".utf8).base64EncodedString()
    }

    @Test func basicCredentialsAreCheckedWhole() throws {
        let auth = try DashboardAuthentication(parsingUserPassword: "ops:pa:ss\n")
        #expect(auth.isEnabled)
        #expect(auth.accepts(authorization: Self.basic("ops", "pa:ss")))
        #expect(auth.accepts(authorization: "basic " + Data("ops:pa:ss".utf8).base64EncodedString()), "the scheme is case-insensitive")
        #expect(!auth.accepts(authorization: Self.basic("ops", "pa:s")))
        #expect(!auth.accepts(authorization: Self.basic("ops", "pa:sss")))
        #expect(!auth.accepts(authorization: Self.basic("admin", "pa:ss")))
        #expect(!auth.accepts(authorization: "Basic not-base64!"))
        #expect(!auth.accepts(authorization: "Bearer pa:ss"), "no token configured")
        #expect(!auth.accepts(authorization: nil))
        #expect(!"\(auth)".contains("pa:ss"), "the description never shows the password")
    }

    @Test func bearerTokensAndBoth() {
        let auth = DashboardAuthentication.bearer(token: "t0ken")
        #expect(auth.accepts(authorization: "Bearer t0ken"))
        #expect(!auth.accepts(authorization: "Bearer t0ke"))
        #expect(!auth.accepts(authorization: Self.basic("t0ken", "t0ken")))
        let both = DashboardAuthentication.basic(user: "a", password: "b").acceptingBearer(token: "t")
        #expect(both.accepts(authorization: "Bearer t") && both.accepts(authorization: Self.basic("a", "b")))
        #expect(DashboardAuthentication.none.accepts(authorization: nil) && !DashboardAuthentication.none.isEnabled)
    }

    @Test func malformedCredentialsAreRefused() {
        for text in ["nocolon", ":password", "user:", ""] {
            #expect(throws: DashboardError.self, "\(text)") { try DashboardAuthentication(parsingUserPassword: text) }
        }
    }

    @Test func constantTimeComparison() {
        #expect(ConstantTime.equals(Array("abc".utf8), Array("abc".utf8)))
        #expect(!ConstantTime.equals(Array("abc".utf8), Array("abd".utf8)))
        #expect(!ConstantTime.equals(Array("abc".utf8), Array("abcd".utf8)))
        #expect(!ConstantTime.equals([], Array("a".utf8)))
        // Lengths that differ by a multiple of 256 are still different.
        #expect(!ConstantTime.equals([UInt8](repeating: 0, count: 256), []))
    }

    @Test func loopbackAddresses() {
        for host in ["127.0.0.1", "127.1.2.3", "::1", "[::1]", "localhost"] { #expect(Dashboard.isLoopback(host), "\(host)") }
        for host in ["0.0.0.0", "10.0.0.1", "::", "example.com", "127.0.0.1.example.com", "128.0.0.1"] {
            #expect(!Dashboard.isLoopback(host), "\(host)")
        }
    }

    @Test func aNonLoopbackBindNeedsCredentials() throws {
        let open = Dashboard(configuration: DashboardConfiguration())
        #expect(throws: DashboardError.self) { _ = try open.makeApplication(host: "0.0.0.0", port: 0) }
        _ = try open.makeApplication(host: "127.0.0.1", port: 0)
        let guarded = Dashboard(configuration: DashboardConfiguration(authentication: .bearer(token: "x")))
        _ = try guarded.makeApplication(host: "0.0.0.0", port: 0)
    }
}

struct SameOriginTests {
    static func request(
        _ fields: [HTTPField.Name: String], method: HTTPRequest.Method = .post, authority: String = "127.0.0.1:8089"
    ) -> Request {
        var headers = HTTPFields()
        for (name, value) in fields { headers[name] = value }
        let head = HTTPRequest(method: method, scheme: "http", authority: authority, path: "/api/x", headerFields: headers)
        return Request(head: head, body: RequestBody(buffer: ByteBuffer()))
    }

    static let action = HTTPField.Name("X-QTasks-Request")!
    static let fetchSite = HTTPField.Name("Sec-Fetch-Site")!

    @Test func aStateChangingRequestMustBeSameOrigin() {
        #expect(AccessControl<BasicRequestContext>.crossOriginReason(Self.request([:])) != nil, "no action header")
        #expect(AccessControl<BasicRequestContext>.crossOriginReason(Self.request([Self.action: "1"])) == nil, "curl, no Origin")
        #expect(
            AccessControl<BasicRequestContext>.crossOriginReason(
                Self.request([Self.action: "1", .origin: "http://127.0.0.1:8089", Self.fetchSite: "same-origin"])) == nil)
        #expect(
            AccessControl<BasicRequestContext>.crossOriginReason(Self.request([Self.action: "1", .origin: "http://evil.example"]))
                != nil)
        #expect(
            AccessControl<BasicRequestContext>.crossOriginReason(Self.request([Self.action: "1", .origin: "http://127.0.0.1:8090"]))
                != nil, "another port is another origin")
        #expect(
            AccessControl<BasicRequestContext>.crossOriginReason(Self.request([Self.action: "1", Self.fetchSite: "cross-site"]))
                != nil)
        #expect(AccessControl<BasicRequestContext>.crossOriginReason(Self.request([Self.action: "0"])) != nil)
    }
}

struct HostAllowListTests {
    typealias Control = AccessControl<BasicRequestContext>

    /// Without credentials only loopback names are answered, so a page
    /// whose name was re-pointed at 127.0.0.1 (DNS rebinding) gets nothing.
    @Test func withoutCredentialsOnlyLoopbackNames() {
        let open = Control(authentication: .none, allowedHosts: nil)
        for authority in ["127.0.0.1:8089", "localhost:8089", "[::1]:8089", "127.0.0.2", "LOCALHOST"] {
            #expect(open.hostIsAllowed(SameOriginTests.request([:], authority: authority)), "\(authority)")
        }
        for authority in ["rebind.attacker.example:8089", "127.0.0.1.nip.io:8089", "10.0.0.1:8089"] {
            #expect(!open.hostIsAllowed(SameOriginTests.request([:], authority: authority)), "\(authority)")
        }
        let guarded = Control(authentication: .bearer(token: "t"), allowedHosts: nil)
        #expect(guarded.hostIsAllowed(SameOriginTests.request([:], authority: "dashboard.example.com")))
        let proxied = Control(authentication: .none, allowedHosts: ["qtasks.internal"])
        #expect(proxied.hostIsAllowed(SameOriginTests.request([:], authority: "qtasks.internal:443")))
        #expect(!proxied.hostIsAllowed(SameOriginTests.request([:], authority: "other.internal")))
    }
}

struct LiveFeedTests {
    static let workerID = "host.1.abcd"

    static func heartbeat(processed: Int, failed: Int, retried: Int, startedAt: Date, sentAt: Date) -> WorkerHeartbeat {
        WorkerHeartbeat(
            workerID: workerID, host: "host", pid: 1, queues: ["default"], concurrency: 4, inFlight: 0,
            processed: processed, failed: failed, retried: retried, startedAt: startedAt, sentAt: sentAt,
            expiresAt: sentAt.addingTimeInterval(3600))
    }

    static func finished(_ uuid: String, at time: Date, succeeded: Bool) -> [TaskEvent] {
        [
            TaskEvent(kind: .received, uuid: uuid, taskName: "add", queue: "default", attempt: 1, workerID: workerID, timestamp: time),
            TaskEvent(
                kind: succeeded ? .succeeded : .failed, uuid: uuid, taskName: "add", queue: "default", attempt: 1,
                workerID: workerID, timestamp: time, duration: .milliseconds(1), result: succeeded ? 1 : nil,
                failure: succeeded ? nil : TaskEvent.Failure(type: "E", message: "m", traceback: "t")),
        ]
    }

    /// Tasks before the dashboard come from the records, tasks after from
    /// the heartbeat counters, and none is counted twice.
    @Test func theLastHourCountsEachTaskOnce() async throws {
        let store = MemoryResultStore()
        let workerStart = Date().addingTimeInterval(-600)
        // Ten tasks done before the worker's last heartbeat.
        for index in 0..<10 {
            try await store.record(Self.finished("t\(index)", at: Date().addingTimeInterval(-120), succeeded: index != 0))
        }
        try await store.recordHeartbeat(
            Self.heartbeat(processed: 10, failed: 1, retried: 0, startedAt: workerStart, sentAt: Date().addingTimeInterval(-1)))
        // One done after that heartbeat but before the dashboard started:
        // the next heartbeat counts it, so the records must not.
        try await store.record(Self.finished("late", at: Date().addingTimeInterval(-0.5), succeeded: true))
        let feed = LiveFeed()
        try await feed.sample(from: store)
        try await feed.backfill(from: store)
        let first = await feed.overview()
        #expect(first.lastHour["succeeded"]?.intValue == 9 && first.lastHour["failed"]?.intValue == 1, "\(first.lastHour)")
        #expect(first.workers.online == 1)

        // Five more, one failed and one retried, reported by the next heartbeat.
        for index in 10..<15 { try await store.record(Self.finished("t\(index)", at: Date(), succeeded: true)) }
        try await store.recordHeartbeat(
            Self.heartbeat(processed: 16, failed: 2, retried: 1, startedAt: workerStart, sentAt: Date()))
        try await feed.sample(from: store)
        // The same heartbeat again adds nothing.
        try await feed.sample(from: store)
        let second = await feed.overview()
        // 9 before, then 16 - 10 processed of which 1 failed and 1 retried.
        #expect(second.lastHour["succeeded"]?.intValue == 13, "\(second.lastHour)")
        #expect(second.lastHour["failed"]?.intValue == 2 && second.lastHour["retried"]?.intValue == 1, "\(second.lastHour)")
        let chart = second.chart["succeeded"]?.arrayValue?.compactMap(\.intValue) ?? []
        #expect(chart.count == 60 && chart.reduce(0, +) == 13, "\(second.chart)")
    }

    /// A worker whose heartbeat lapsed (it dropped out of the live list)
    /// and came back is counted from its last counters, not its new totals.
    @Test func aLapsedWorkerKeepsItsCounts() async throws {
        let now = Date()
        let start = now.addingTimeInterval(-600)
        let feed = LiveFeed()
        let store = MemoryResultStore()
        try await store.recordHeartbeat(Self.heartbeat(processed: 100, failed: 0, retried: 0, startedAt: start, sentAt: now))
        try await feed.sample(from: store)
        // Gone from the live list (a store that forgot it).
        let empty = MemoryResultStore()
        try await feed.sample(from: empty)
        try await store.recordHeartbeat(
            Self.heartbeat(processed: 160, failed: 10, retried: 0, startedAt: start, sentAt: now.addingTimeInterval(5)))
        try await feed.sample(from: store)
        let overview = await feed.overview()
        #expect(overview.lastHour["succeeded"]?.intValue == 50 && overview.lastHour["failed"]?.intValue == 10, "\(overview.lastHour)")
    }

    /// Without a store the streams still get an update a second.
    @Test func idleUpdatesReachSubscribers() async throws {
        let feed = LiveFeed()
        let subscription = try #require(await feed.subscribe(limit: 4))
        await feed.publishIdle()
        var iterator = subscription.updates.makeAsyncIterator()
        let update = try #require(await iterator.next())
        #expect(Self.recent(update) == [] && update.contains("last_hour"), "\(update)")
    }

    /// Subscribers get the tasks that changed since the previous update,
    /// and only the newest update when they are slow.
    @Test func updatesCarryWhatChanged() async throws {
        let store = MemoryResultStore()
        let feed = LiveFeed()
        let subscription = try #require(await feed.subscribe(limit: 1))
        #expect(await feed.subscribe(limit: 1) == nil, "the limit is enforced")
        try await store.record(Self.finished("a", at: Date(), succeeded: true))
        try await feed.sample(from: store)
        var iterator = subscription.updates.makeAsyncIterator()
        let first = try #require(await iterator.next())
        #expect(Self.recent(first) == ["a"], "\(first)")
        try await store.record(Self.finished("b", at: Date(), succeeded: false))
        try await feed.sample(from: store)
        try await feed.sample(from: store)
        // Two samples while nobody read: the newest only (nothing changed in it).
        let latest = try #require(await iterator.next())
        #expect(Self.recent(latest) == [], "\(latest)")
        await feed.unsubscribe(subscription.id)
        #expect(await feed.subscriberCount == 0)
    }

    static func recent(_ text: String) -> [String] {
        guard case .object(let object) = try? JSONDecoder().decode(JSONValue.self, from: Data(text.utf8)) else { return ["?"] }
        return object["recent"]?.arrayValue?.compactMap { $0["uuid"]?.stringValue } ?? ["?"]
    }
}

struct AttemptsTests {
    @Test func eventsAreGroupedByAttempt() {
        let failure = TaskEvent.Failure(type: "ValueError", message: "bad", traceback: "tb")
        let start = Date(timeIntervalSince1970: 1_000)
        func event(_ kind: TaskEvent.Kind, _ attempt: Int, _ offset: Double, retryDelay: Duration? = nil, failure: TaskEvent.Failure? = nil)
            -> TaskEvent
        {
            TaskEvent(
                kind: kind, uuid: "u", taskName: "t", queue: "q", attempt: attempt, workerID: "w\(attempt)",
                timestamp: start.addingTimeInterval(offset), duration: kind == .started || kind == .received ? nil : .seconds(1),
                failure: failure, retryDelay: retryDelay, deadLetterQueue: kind == .deadLettered ? "q.dlq" : nil)
        }
        var record = TaskRecord(first: event(.sent, 1, 0))
        for e in [
            event(.received, 1, 1), event(.started, 1, 2), event(.retried, 1, 3, retryDelay: .seconds(2), failure: failure),
            event(.received, 2, 5), event(.started, 2, 6), event(.failed, 2, 7, failure: failure), event(.deadLettered, 2, 7),
        ] {
            record.apply(e)
        }
        let attempts = JSONShapes.attempts(of: record).arrayValue ?? []
        #expect(attempts.count == 2)
        #expect(attempts.first?["outcome"]?.stringValue == "retried" && attempts.first?["retry_delay"]?.doubleValue == 2)
        #expect(attempts.first?["worker_id"]?.stringValue == "w1" && attempts.first?["started_at"]?.doubleValue == 1_002)
        #expect(attempts.last?["outcome"]?.stringValue == "dead_lettered" && attempts.last?["error"]?.stringValue == "ValueError: bad")
        #expect(attempts.last?["received_at"]?.doubleValue == 1_005 && attempts.last?["ended_at"]?.doubleValue == 1_007)
    }
}
