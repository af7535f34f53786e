import Foundation
import QTasks
import Synchronization
import Testing
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// `qtasks dashboard`'s JSON API against a real broker, a real worker
/// process and its SQLite result store: what the pages show, the actions,
/// and who may use them.
@Suite(.enabled(if: IntegrationEnvironment.enabled, "no RabbitMQ reachable at QTASKS_URL; deploy/test.sh starts one"),
       .timeLimit(.minutes(3)))
struct DashboardAPITests {
    /// The overview lists the queue and the live worker; a failed task is
    /// listed with its traceback and attempts; its dead letter is shown
    /// with its reasons, and a replay makes it run again.
    @Test func showsQueueWorkerFailedTaskAndReplaysADeadLetter() async throws {
        let store = try TestResultStore.sqlite()
        defer { store.remove() }
        try await TestScope.run("dash-api") { scope in
            _ = try await scope.startWorker(on: scope.queue, arguments: store.arguments + ["--heartbeat-interval", "1"])
            let ok = try await scope.runCLI(["send", "add", "2", "3", "--queue", scope.queue, "--wait", "20"] + store.arguments)
            #expect(ok.termination == .exited(0), "\(ok)")
            let message = "boom-\(UUID().uuidString.prefix(8))"
            let failed = try await scope.runCLI(["send", "fail", message, "--queue", scope.queue, "--wait", "20"] + store.arguments)
            let uuid = try #require(try ResultMessage(body: Array(failed.stdout.utf8), correlationID: nil, contentType: nil).uuid)
            try await waitUntil("the failed task's dead letter", timeout: 30) {
                try await scope.admin.queueInfo(scope.deadLetterQueue)?.messageCount == 1
            }

            let dashboard = try await scope.startDashboard(["--queue", scope.queue] + store.arguments)
            let base = dashboard.baseURL

            // Overview: the queue with its consumer and dead letter, a worker online.
            let overview = try await eventually("the overview with the queue's dead letter and the worker") { () -> [String: JSONValue]? in
                let answer = try await HTTP.request(base + "/api/overview")
                guard answer.status == 200, case .object(let object)? = answer.json,
                    case .array(let queues)? = object["queues"],
                    let row = queues.first(where: { $0["name"]?.stringValue == scope.queue })?.objectValue,
                    row["dead_letters"]?.intValue == 1, object["workers"]?["online"]?.intValue ?? 0 >= 1
                else { return nil }
                return row
            }
            #expect(overview["consumers"]?.intValue == 1, "\(overview)")

            // Its heartbeat (every second here) catches up with the two tasks.
            let worker = try await eventually("the worker with its two tasks processed") { () -> JSONValue? in
                let workers = try await HTTP.request(base + "/api/workers")
                return workers.json?["workers"]?.arrayValue?.first {
                    $0["queues"]?.arrayValue?.contains(.string(scope.queue)) == true && $0["processed"]?.intValue ?? 0 >= 2
                }
            }
            #expect(worker["status"]?.stringValue == "online" && worker["failed"]?.intValue == 1, "\(worker)")

            // The failed task in the list (filter by status and queue), then its detail.
            let list = try await HTTP.request(base + "/api/tasks?status=error&queue=\(scope.queue)")
            #expect(list.json?["tasks"]?.arrayValue?.map { $0["uuid"]?.stringValue } == [uuid], "\(list)")
            let detail = try await HTTP.request(base + "/api/tasks/\(uuid)")
            #expect(detail.status == 200, "\(detail)")
            #expect(detail.json?["failure"]?["traceback"]?.stringValue?.contains(message) == true, "\(detail)")
            #expect(detail.json?["dead_letter_queue"]?.stringValue == scope.deadLetterQueue, "\(detail)")
            let attempts = detail.json?["attempts"]?.arrayValue ?? []
            #expect(attempts.count == 1 && attempts.first?["outcome"]?.stringValue == "dead_lettered", "\(detail)")
            #expect(attempts.first?["started_at"]?.doubleValue != nil && attempts.first?["worker_id"]?.stringValue != nil, "\(detail)")
            let missing = try await HTTP.request(base + "/api/tasks/\(UUID().uuidString.lowercased())")
            #expect(missing.status == 404 && missing.json?["error"]?.stringValue?.contains("no record") == true, "\(missing)")
            let badStatus = try await HTTP.request(base + "/api/tasks?status=exploded")
            #expect(badStatus.status == 400, "\(badStatus)")

            // The dead letter with its reasons, left in the queue.
            let letters = try await HTTP.request(base + "/api/dead-letters/\(scope.queue)")
            let letter = try #require(letters.json?["messages"]?.arrayValue?.first, "\(letters)")
            #expect(letter["uuid"]?.stringValue == uuid && letter["error_type"]?.stringValue == "ExampleError", "\(letters)")
            #expect(letter["error_message"]?.stringValue == message && letter["origin_queue"]?.stringValue == scope.queue, "\(letters)")
            #expect(letter["headers"]?["x-qtasks-error-type"]?.stringValue == "ExampleError", "\(letters)")
            let left = try await scope.admin.queueInfo(scope.deadLetterQueue)?.messageCount
            #expect(left == 1, "browsing leaves the message")

            // Replay: refused without the action header or from another
            // origin, then done; the task runs again (a second start in its record).
            let url = base + "/api/dead-letters/\(scope.queue)/replay"
            let body = #"{"uuid": "\#(uuid)"}"#
            let bare = try await HTTP.request(url, method: "POST", headers: ["Content-Type": "application/json"], body: body)
            #expect(bare.status == 403, "\(bare)")
            let crossOrigin = try await HTTP.request(
                url, method: "POST", headers: ["X-QTasks-Request": "1", "Origin": "http://evil.example"], body: body)
            #expect(crossOrigin.status == 403 && crossOrigin.text.contains("cross-origin"), "\(crossOrigin)")
            let replay = try await HTTP.request(
                url, method: "POST", headers: ["X-QTasks-Request": "1", "Origin": base, "Content-Type": "application/json"], body: body)
            #expect(replay.status == 200 && replay.json?["moved"]?[scope.queue]?.intValue == 1, "\(replay)")
            _ = try await eventually("the replayed task started again") { () -> Bool? in
                let detail = try await HTTP.request(base + "/api/tasks/\(uuid)")
                let starts = detail.json?["events"]?.arrayValue?.filter { $0["kind"]?.stringValue == "started" }.count ?? 0
                return starts >= 2 ? true : nil
            }
            // It fails again (fail always does) and is dead-lettered again; a
            // uuid that is not there is a 404.
            try await waitUntil("the replayed task's dead letter", timeout: 30) {
                try await scope.admin.queueInfo(scope.deadLetterQueue)?.messageCount == 1
            }
            let absent = try await HTTP.request(
                url, method: "POST", headers: ["X-QTasks-Request": "1"], body: #"{"uuid": "not-there"}"#)
            #expect(absent.status == 404, "\(absent)")

            // Purge needs the dead-letter queue's name as confirmation.
            let purgeURL = base + "/api/dead-letters/\(scope.queue)/purge"
            let unconfirmed = try await HTTP.request(purgeURL, method: "POST", headers: ["X-QTasks-Request": "1"], body: "{}")
            #expect(unconfirmed.status == 400, "\(unconfirmed)")
            let kept = try await scope.admin.queueInfo(scope.deadLetterQueue)?.messageCount
            #expect(kept == 1, "not purged without confirmation")
            let purge = try await HTTP.request(
                purgeURL, method: "POST", headers: ["X-QTasks-Request": "1"], body: #"{"confirm": "\#(scope.deadLetterQueue)"}"#)
            #expect(purge.status == 200 && purge.json?["purged"]?.intValue == 1, "\(purge)")

            // Every page path serves the page, with the security headers.
            for path in ["/", "/workers", "/tasks", "/tasks/\(uuid)", "/dead-letters", "/dead-letters/\(scope.queue)", "/schedules", "/state"] {
                let page = try await HTTP.request(base + path)
                #expect(page.status == 200 && page.text.contains("<meta name=\"qtasks-base\" content=\"\">"), "\(path): \(page)")
                #expect(page.headers["content-security-policy"]?.contains("script-src 'self'") == true, "\(path)")
            }
            let script = try await HTTP.request(base + "/assets/app.js")
            #expect(script.status == 200 && script.headers["content-type"]?.hasPrefix("text/javascript") == true, "\(script)")
            let unknown = try await HTTP.request(base + "/api/nothing-here")
            #expect(unknown.status == 404 && unknown.json?["error"] != nil, "\(unknown)")
        }
    }

    /// Live updates: a stream of `update` events, at most about one a
    /// second, carrying the tasks that changed.
    @Test func liveUpdatesCarryNewTasksAtABoundedRate() async throws {
        let store = try TestResultStore.sqlite()
        defer { store.remove() }
        try await TestScope.run("dash-live") { scope in
            _ = try await scope.startWorker(on: scope.queue, arguments: store.arguments + ["--heartbeat-interval", "1"])
            let dashboard = try await scope.startDashboard(["--queue", scope.queue] + store.arguments)
            // The stream is read for as long as the steps below take, and
            // judged by how long that was: a fixed 6 s window ended before
            // the tasks were sent when a loaded machine was slow to start
            // the `send` process.
            let reader = LiveStream.Reader(dashboard.baseURL + "/api/live")
            defer { _ = reader.stop() }
            // Let the stream start, then send tasks during it.
            _ = try await eventually("the stream's first update", timeout: 30) { reader.updates.isEmpty ? nil : true }
            let sent = try await scope.runCLI(["send", "add", "1", "1", "--queue", scope.queue, "--count", "20", "--wait", "60"] + store.arguments)
            #expect(sent.termination == .exited(0), "\(sent)")
            func hasTheNewTasks(_ updates: [JSONValue]) -> Bool {
                updates.flatMap { $0["recent"]?.arrayValue ?? [] }.contains {
                    $0["queue"]?.stringValue == scope.queue && $0["task_name"]?.stringValue == "add"
                }
            }
            _ = try await eventually("the new tasks in the updates", timeout: 30) { hasTheNewTasks(reader.updates) ? true : nil }
            // At least 6 s of stream for the rate.
            while reader.elapsed < 6 { try await Task.sleep(for: .milliseconds(100)) }
            let seconds = reader.stop()
            let updates = reader.updates
            // One update a second: about `seconds`, never dozens.
            #expect(updates.count >= 3 && Double(updates.count) <= seconds + 2, "\(updates.count) updates in \(seconds) s")
            #expect(hasTheNewTasks(updates), "the new tasks in the updates")
            #expect(updates.allSatisfy { $0["last_hour"]?["succeeded"] != nil && $0["workers"]?["online"] != nil })
        }
    }

    /// What a break-it run found: numbers past Int's range crashed the
    /// process; a malformed replay body replayed everything; replaying
    /// tasks that fail again looped for ever; an open live stream kept a
    /// stopped dashboard alive. Each is refused or bounded now.
    @Test func hostileRequestsAreRefusedAndReplayAllIsBounded() async throws {
        let store = try TestResultStore.sqlite()
        defer { store.remove() }
        try await TestScope.run("dash-hostile") { scope in
            _ = try await scope.startWorker(on: scope.queue, arguments: store.arguments)
            for index in 0..<5 {
                _ = try await scope.runCLI(["send", "fail", "f\(index)", "--queue", scope.queue, "--wait", "20"] + store.arguments)
            }
            try await waitUntil("five dead letters", timeout: 30) {
                try await scope.admin.queueInfo(scope.deadLetterQueue)?.messageCount == 5
            }
            let dashboard = try await scope.startDashboard(["--queue", scope.queue] + store.arguments)
            let base = dashboard.baseURL

            for query in ["limit=1e19", "offset=1e19", "limit=9223372036854775808", "offset=-1", "limit=abc", "since=abc"] {
                let answer = try await HTTP.request(base + "/api/tasks?\(query)")
                #expect(answer.status == 400, "\(query): \(answer)")
            }
            #expect(dashboard.process.isRunning, "the dashboard survived: \(dashboard.process.stderrTail())")

            let replay = base + "/api/dead-letters/\(scope.queue)/replay"
            let action = ["X-QTasks-Request": "1"]
            for body in [#"{"uuid": 5}"#, #"{"uuid": null}"#, #"{"uid": "x"}"#, #"{"uuid": ""}"#, "[]", "not json"] {
                let answer = try await HTTP.request(replay, method: "POST", headers: action, body: body)
                #expect(answer.status == 400, "\(body): \(answer)")
            }
            let huge = try await HTTP.request(replay, method: "POST", headers: action, body: String(repeating: " ", count: 70_000))
            #expect(huge.status == 413, "\(huge)")
            let control = try await HTTP.request(base + "/api/dead-letters/x%0Aforged")
            #expect(control.status == 400, "\(control)")
            let long = try await HTTP.request(base + "/api/dead-letters/" + String(repeating: "q", count: 253))
            #expect(long.status == 400, "\(long)")
            #expect(try await scope.admin.queueInfo(scope.deadLetterQueue)?.messageCount == 5, "nothing was replayed")

            // Replay all: each of the five once, though each fails again and
            // comes back to the dead-letter queue meanwhile.
            let all = try await HTTP.request(replay, method: "POST", headers: action, body: "{}", timeout: 60)
            #expect(all.status == 200 && all.json?["moved"]?[scope.queue]?.intValue == 5, "\(all)")
            try await waitUntil("the five back in the dead-letter queue", timeout: 20) {
                try await scope.admin.queueInfo(scope.deadLetterQueue)?.messageCount == 5
            }
            // A 404 does not drop the connection other requests share: the
            // next call still works (and the log has no reconnect).
            let missing = try await HTTP.request(base + "/api/dead-letters/no-such-queue-\(UUID().uuidString.prefix(6))")
            #expect(missing.status == 404, "\(missing)")
            let after = try await HTTP.request(base + "/api/dead-letters/\(scope.queue)")
            #expect(after.status == 200, "\(after)")
            let connects = dashboard.process.stderrTail(lines: 1000).components(separatedBy: "connected to RabbitMQ").count - 1
            #expect(connects <= 1, "reconnected \(connects) times:\n\(dashboard.process.stderrTail())")

            // SIGTERM with a live stream open: the dashboard ends the stream and exits.
            let reader = Task { try await LiveStream.read(base + "/api/live", for: 20) }
            try await Task.sleep(for: .seconds(2))
            dashboard.process.signal(SIGTERM)
            let ended = await dashboard.process.waitForExit(timeout: 10)
            #expect(ended == .exited(0), "\(dashboard.process.stderrTail())")
            reader.cancel()
        }
    }

    /// A worker that stops heartbeating (stopped with SIGSTOP) turns stale
    /// after two intervals, then disappears when its heartbeat expires; it
    /// comes back when it runs again.
    ///
    /// The interval is 3 s: the worker is stale from 6 s to 9 s after its
    /// last heartbeat, a window each poll must fall into. With a 1 s
    /// interval the window was 1 s, and one slow poll on a loaded machine
    /// could step over it.
    @Test func aSilentWorkerTurnsStaleThenDisappears() async throws {
        let store = try TestResultStore.sqlite()
        defer { store.remove() }
        try await TestScope.run("dash-stale") { scope in
            let worker = try await scope.startWorker(on: scope.queue, arguments: store.arguments + ["--heartbeat-interval", "3"])
            let dashboard = try await scope.startDashboard(["--queue", scope.queue] + store.arguments)
            func status() async throws -> String? {
                let answer = try await HTTP.request(dashboard.baseURL + "/api/workers")
                let row = answer.json?["workers"]?.arrayValue?.first { $0["pid"]?.intValue == Int64(worker.pid) }
                return row?["status"]?.stringValue ?? "gone"
            }
            _ = try await eventually("the worker online") { try await status() == "online" ? true : nil }
            worker.signal(SIGSTOP)
            defer { worker.signal(SIGCONT) }
            _ = try await eventually("the worker stale", timeout: 30) { try await status() == "stale" ? true : nil }
            _ = try await eventually("the worker gone", timeout: 30) { try await status() == "gone" ? true : nil }
            let overview = try await HTTP.request(dashboard.baseURL + "/api/overview")
            #expect(overview.json?["workers"]?["online"]?.intValue == 0, "\(overview)")
            worker.signal(SIGCONT)
            _ = try await eventually("the worker back online", timeout: 30) { try await status() == "online" ? true : nil }
        }
    }

    /// Credentials: a non-loopback bind without them is refused at start;
    /// with them, a request without or with wrong ones is a 401, right
    /// ones (Basic or bearer) pass, and the password is never printed.
    @Test func credentialsAreRequiredAndChecked() async throws {
        let store = try TestResultStore.sqlite()
        defer { store.remove() }
        try await TestScope.run("dash-auth") { scope in
            let open = try await scope.runCLI(["dashboard", "--host", "0.0.0.0", "--port", "0"] + store.arguments)
            #expect(open.termination == .exited(64), "\(open)")
            #expect(open.stderr.contains("not a loopback address"), "\(open)")

            let password = "s3cret-\(UUID().uuidString.prefix(6))"
            let directory = try StateDirectory()
            defer { directory.remove() }
            let file = directory.path + "/auth"
            try Data("ops:\(password)\n".utf8).write(to: URL(fileURLWithPath: file))
            _ = try await scope.startWorker(on: scope.queue, arguments: store.arguments)
            let dashboard = try await scope.startDashboard(
                ["--queue", scope.queue, "--auth-file", file] + store.arguments,
                environment: ["QTASKS_DASHBOARD_TOKEN": "token-\(password)"])
            let base = dashboard.baseURL

            let none = try await HTTP.request(base + "/api/overview")
            #expect(none.status == 401 && none.headers["www-authenticate"]?.hasPrefix("Basic") == true, "\(none)")
            let wrong = try await HTTP.request(base + "/api/overview", headers: HTTP.basic("ops", password + "x"))
            #expect(wrong.status == 401, "\(wrong)")
            let wrongUser = try await HTTP.request(base + "/", headers: HTTP.basic("admin", password))
            #expect(wrongUser.status == 401, "\(wrongUser)")
            let right = try await HTTP.request(base + "/api/overview", headers: HTTP.basic("ops", password))
            #expect(right.status == 200, "\(right)")
            let bearer = try await HTTP.request(base + "/api/workers", headers: ["Authorization": "Bearer token-\(password)"])
            #expect(bearer.status == 200, "\(bearer)")
            let badBearer = try await HTTP.request(base + "/api/workers", headers: ["Authorization": "Bearer nope"])
            #expect(badBearer.status == 401, "\(badBearer)")
            // Credentials do not replace the same-origin check.
            let post = try await HTTP.request(
                base + "/api/dead-letters/\(scope.queue)/purge", method: "POST",
                headers: HTTP.basic("ops", password).merging(["Origin": "http://evil.example", "X-QTasks-Request": "1"]) { a, _ in a },
                body: "{}")
            #expect(post.status == 403, "\(post)")
            let page = try await HTTP.request(base + "/", headers: HTTP.basic("ops", password))
            #expect(page.status == 200 && !page.text.contains(password))

            dashboard.process.signal(SIGTERM)
            let ended = await dashboard.process.waitForExit(timeout: 20)
            #expect(ended == .exited(0), "\(dashboard.process.stderrTail())")
            let logs = String(decoding: dashboard.process.standardOutput, as: UTF8.self) + dashboard.process.stderrTail(lines: 1000)
            #expect(!logs.contains(password), "the password in the output: \(logs)")
        }
    }
}

/// Reads a server-sent event stream for a while and returns the JSON of
/// its `update` events.
enum LiveStream {
    static func read(_ url: String, for seconds: Double) async throws -> [JSONValue] {
        let delegate = Collector()
        let session = URLSession(configuration: .ephemeral, delegate: delegate, delegateQueue: nil)
        let task = session.dataTask(with: URL(string: url)!)
        task.resume()
        try await Task.sleep(for: .seconds(seconds))
        task.cancel()
        session.invalidateAndCancel()
        let text = String(decoding: delegate.data.withLock { $0 }, as: UTF8.self)
        return text.components(separatedBy: "\n\n").compactMap { block -> JSONValue? in
            let lines = block.split(separator: "\n")
            guard lines.contains("event: update"), let data = lines.first(where: { $0.hasPrefix("data: ") }) else { return nil }
            return try? JSONDecoder().decode(JSONValue.self, from: Data(data.dropFirst(6).utf8))
        }
    }

    /// Reads a stream from its creation until ``stop()``; ``updates`` so
    /// far can be read meanwhile.
    final class Reader: Sendable {
        private let delegate = Collector()
        private let session: URLSession
        private let started = ContinuousClock.now
        private let stopped = Mutex<ContinuousClock.Instant?>(nil)

        init(_ url: String) {
            session = URLSession(configuration: .ephemeral, delegate: delegate, delegateQueue: nil)
            session.dataTask(with: URL(string: url)!).resume()
        }

        /// Seconds since the reader started (until it stopped).
        var elapsed: Double {
            let end = stopped.withLock { $0 } ?? .now
            let duration = end - started
            return Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
        }

        /// Stops reading (again: nothing more); the seconds it read for.
        func stop() -> Double {
            let first = stopped.withLock { stopped -> Bool in
                guard stopped == nil else { return false }
                stopped = .now
                return true
            }
            if first { session.invalidateAndCancel() }
            return elapsed
        }

        /// The `update` events so far.
        var updates: [JSONValue] { LiveStream.updates(in: delegate.data.withLock { $0 }) }
    }

    static func updates(in data: Data) -> [JSONValue] {
        let text = String(decoding: data, as: UTF8.self)
        return text.components(separatedBy: "\n\n").compactMap { block -> JSONValue? in
            let lines = block.split(separator: "\n")
            guard lines.contains("event: update"), let data = lines.first(where: { $0.hasPrefix("data: ") }) else { return nil }
            return try? JSONDecoder().decode(JSONValue.self, from: Data(data.dropFirst(6).utf8))
        }
    }

    final class Collector: NSObject, URLSessionDataDelegate, Sendable {
        let data = Mutex(Data())
        func urlSession(_ session: URLSession, dataTask: URLSessionDataTask, didReceive data: Data) {
            self.data.withLock { $0.append(data) }
        }
    }
}
