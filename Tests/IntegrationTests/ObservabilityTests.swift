import Foundation
import Testing

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// Metrics (`--metrics-port`, Prometheus text) and logs (`--log-format
/// json`, redacted URLs) of qtasks-example against the real broker.
@Suite(.enabled(if: IntegrationEnvironment.enabled, "no RabbitMQ reachable at QTASKS_URL; deploy/test.sh starts one"),
       .timeLimit(.minutes(2)))
struct ObservabilityTests {
    /// One sample of the Prometheus text: name and labels.
    struct Sample: Hashable {
        let name: String
        let labels: [String: String]
    }

    /// Parses `name{k="v",...} value` lines; comments skipped.
    static func parse(_ text: String) -> [Sample: Double] {
        var samples: [Sample: Double] = [:]
        for line in text.split(separator: "\n") where !line.hasPrefix("#") {
            guard let space = line.lastIndex(of: " "), let value = Double(line[line.index(after: space)...]) else { continue }
            let series = line[..<space]
            var name = String(series)
            var labels: [String: String] = [:]
            if let brace = series.firstIndex(of: "{") {
                name = String(series[..<brace])
                let inner = series[series.index(after: brace)..<(series.lastIndex(of: "}") ?? series.endIndex)]
                // Label values here hold no quotes or commas.
                for pair in inner.split(separator: ",") {
                    let parts = pair.split(separator: "=", maxSplits: 1)
                    guard parts.count == 2 else { continue }
                    labels[String(parts[0])] = parts[1].trimmingCharacters(in: CharacterSet(charactersIn: "\""))
                }
            }
            samples[Sample(name: name, labels: labels)] = value
        }
        return samples
    }

    static func scrape(port: Int) async throws -> (text: String, contentType: String?) {
        let url = URL(string: "http://127.0.0.1:\(port)/metrics")!
        let (data, response) = try await URLSession.shared.data(from: url)
        let http = response as? HTTPURLResponse
        #expect(http?.statusCode == 200)
        return (String(decoding: data, as: UTF8.self), http?.value(forHTTPHeaderField: "Content-Type"))
    }

    /// The port a worker or scheduler logged for `--metrics-port 0`, in a
    /// text (`metrics_port=N`) or JSON (`"metrics_port":"N"`) log line.
    static func metricsPort(of worker: ChildProcess) async throws -> Int {
        var port: Int?
        try await waitUntil("the process to log its metrics port", timeout: 20) {
            if let match = worker.standardErrorText.firstMatch(of: /metrics_port(?:=|":")(\d+)/) { port = Int(match.1) }
            return port != nil
        }
        return port!
    }

    /// 3 add (success), 2 always_fail with --max-attempts 2 (each: one
    /// retry, then failed and dead-lettered), 1 unregistered task name
    /// (failed and dead-lettered as task="unknown"): exactly these counts,
    /// and one duration observation per run.
    @Test func metricsEndpointCountsEachOutcomeExactly() async throws {
        try await TestScope.run("metrics") { scope in
            let worker = try await scope.startFaultWorker([
                "--max-attempts", "2", "--retry-delay", "0.2", "--retry-jitter", "0", "--metrics-port", "0",
            ])
            let port = try await Self.metricsPort(of: worker)

            // Before any task: the endpoint answers, in the text format.
            let first = try await Self.scrape(port: port)
            #expect(first.contentType?.hasPrefix("text/plain; version=0.0.4") == true, "\(first.contentType ?? "none")")

            let bodies = [
                #"{"task_name": "add", "args": [1, 2]}"#, #"{"task_name": "add", "args": [3, 4]}"#,
                #"{"task_name": "add", "args": [5, 6]}"#,
                #"{"task_name": "always_fail", "args": ["a"]}"#, #"{"task_name": "always_fail", "args": ["b"]}"#,
                #"{"task_name": "no_such_task_\#(UUID().uuidString.prefix(8))", "args": []}"#,
            ]
            for body in bodies {
                let uuid = UUID().uuidString.lowercased()
                let json = "{\"uuid\": \"\(uuid)\", " + body.dropFirst()
                try await scope.publishTask(json, correlationID: uuid)
            }
            var statuses: [String: Int] = [:]
            for _ in bodies {
                let reply = try await scope.nextReply(timeout: 20, "a result")
                statuses[reply.status ?? "none", default: 0] += 1
            }
            #expect(statuses == ["success": 3, "error": 3])

            let q = scope.queue
            let expected: [Sample: Double] = [
                Sample(name: "qtasks_tasks_received_total", labels: ["task": "add", "queue": q]): 3,
                Sample(name: "qtasks_tasks_succeeded_total", labels: ["task": "add", "queue": q]): 3,
                Sample(name: "qtasks_task_duration_seconds_count", labels: ["task": "add", "queue": q]): 3,
                Sample(name: "qtasks_tasks_received_total", labels: ["task": "always_fail", "queue": q]): 4,
                Sample(name: "qtasks_tasks_retried_total", labels: ["task": "always_fail", "queue": q]): 2,
                Sample(name: "qtasks_tasks_failed_total", labels: ["task": "always_fail", "queue": q]): 2,
                Sample(name: "qtasks_tasks_dead_lettered_total", labels: ["task": "always_fail", "queue": q]): 2,
                Sample(name: "qtasks_task_duration_seconds_count", labels: ["task": "always_fail", "queue": q]): 4,
                Sample(name: "qtasks_tasks_received_total", labels: ["task": "unknown", "queue": q]): 1,
                Sample(name: "qtasks_tasks_failed_total", labels: ["task": "unknown", "queue": q]): 1,
                Sample(name: "qtasks_tasks_dead_lettered_total", labels: ["task": "unknown", "queue": q]): 1,
                Sample(name: "qtasks_task_duration_seconds_count", labels: ["task": "unknown", "queue": q]): 1,
                Sample(name: "qtasks_tasks_in_flight", labels: [:]): 0,
            ]
            // Counters move once a delivery is settled, just after its
            // result is published: poll briefly, then compare exactly.
            var samples: [Sample: Double] = [:]
            var text = ""
            do {
                try await waitUntil("the expected counts", timeout: 30) {
                    text = try await Self.scrape(port: port).text
                    samples = Self.parse(text)
                    return expected.allSatisfy { samples[$0.key] == $0.value }
                }
            } catch {}
            // Settled a moment ago: nothing more may come.
            try await Task.sleep(for: .milliseconds(500))
            text = try await Self.scrape(port: port).text
            samples = Self.parse(text)
            for (sample, value) in expected {
                #expect(samples[sample] == value, "\(sample.name) \(sample.labels)\n\(text)")
            }
            // Nothing else counted on this queue: no successes or retries of
            // other tasks, no other task labels (the stray name is "unknown").
            let counted = samples.filter { $0.key.labels["queue"] == q && $0.key.name.hasSuffix("_total") && $0.value != 0 }
            #expect(Set(counted.keys).isSubset(of: Set(expected.keys)), "\(text)")
            let labels = Set(samples.keys.filter { $0.labels["queue"] == q }.compactMap { $0.labels["task"] })
            #expect(labels == ["add", "always_fail", "unknown"])
            // The +Inf bucket holds every run too.
            #expect(samples[Sample(name: "qtasks_task_duration_seconds_bucket", labels: ["task": "always_fail", "queue": q, "le": "+Inf"])] == 4, "\(text)")
            #expect(samples[Sample(name: "qtasks_reconnects_total", labels: [:])] ?? 0 == 0)
            #expect(text.contains("# TYPE qtasks_task_duration_seconds histogram"))
            #expect(text.contains("# TYPE qtasks_tasks_received_total counter"))
            await scope.stopGracefully(worker)
        }
    }

    /// A metrics port that cannot be bound (here the broker's own) stops
    /// the worker and the scheduler at once with the bind error, exit 4;
    /// a host name is refused with what to give instead.
    @Test func anUnusableMetricsAddressFailsAtOnceWithItsReason() async throws {
        let taken = String(IntegrationEnvironment.configuration.port)
        let scheduler = IntegrationEnvironment.productsDirectory.appendingPathComponent("qtasks-scheduler").path
        for (executable, extra) in [
            (IntegrationEnvironment.workerExecutable, [String]()),
            (scheduler, ["--state", "memory://", "--every", "60:add"]),
        ] {
            let run = try await ChildProcess.run(executable, ["--metrics-port", taken] + extra, timeout: 30)
            #expect(run.termination == .exited(4), "\(run)")
            #expect(run.stderr.contains("Address already in use"), "\(run)")
            // Below the 10 s the start took when a bind failure was a timeout
            // naming no cause (it was 8 s: no room for a loaded machine).
            #expect(run.elapsed < .seconds(10), "failed at once, not after a timeout: \(run.elapsed)")
        }
        let named = try await ChildProcess.run(
            IntegrationEnvironment.workerExecutable, ["--metrics-host", "localhost", "--metrics-port", "0"], timeout: 30)
        #expect(named.termination == .exited(4), "\(named)")
        #expect(named.stderr.contains("'localhost' is not an IPv4 or IPv6 address"), "\(named)")
    }

    static let requiredKeys: Set<String> = ["timestamp", "level", "label", "message"]

    /// Every stderr line a JSON object with the fixed keys; returns them.
    static func jsonLines(_ stderr: String, sourceLocation: SourceLocation = #_sourceLocation) -> [[String: Any]] {
        var objects: [[String: Any]] = []
        for line in stderr.split(separator: "\n", omittingEmptySubsequences: true) {
            let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
            #expect(object != nil, "not a JSON object: \(line)", sourceLocation: sourceLocation)
            guard let object else { continue }
            #expect(Self.requiredKeys.isSubset(of: Set(object.keys)), "\(line)", sourceLocation: sourceLocation)
            if let timestamp = object["timestamp"] as? String {
                #expect((try? Date.ISO8601FormatStyle(includingFractionalSeconds: true).parse(timestamp)) != nil, "\(timestamp)",
                        sourceLocation: sourceLocation)
            }
            objects.append(object)
        }
        return objects
    }

    /// JSON lines through a whole run: start (broker and State URLs), task
    /// outcomes (uuid, task, queue, attempt, duration_ms, status), shutdown;
    /// the State URL's password never appears, though it was logged.
    @Test func jsonLogLinesParseAndNeverCarryTheStatePassword() async throws {
        try await TestScope.run("json-logs") { scope in
            // Never opened: only step1/step2 open the State store.
            let secret = "s3cret-" + UUID().uuidString.prefix(12)
            let stateURL = "redis://:\(secret)@127.0.0.1:6379/0"
            let worker = try await scope.startFaultWorker([
                "--log-format", "json", "--state", stateURL, "--max-attempts", "2", "--retry-delay", "0.2",
                "--retry-jitter", "0",
            ])
            let success = UUID().uuidString.lowercased()
            try await scope.publishTask(#"{"uuid": "\#(success)", "task_name": "add", "args": [1, 2]}"#, correlationID: success)
            let failure = UUID().uuidString.lowercased()
            try await scope.publishTask(#"{"uuid": "\#(failure)", "task_name": "always_fail", "args": ["x"]}"#, correlationID: failure)
            _ = try await scope.nextReply(timeout: 20, "first result")
            _ = try await scope.nextReply(timeout: 20, "second result")
            await scope.stopGracefully(worker)

            let stderr = worker.standardErrorText
            #expect(!stderr.contains(secret), "the State password leaked:\n\(stderr)")
            let objects = Self.jsonLines(stderr)
            // The start line names the State URL, redacted.
            let starting = objects.first { $0["message"] as? String == "worker starting" }
            #expect(starting != nil, "\(stderr)")
            if let state = starting?["state"] as? String {
                #expect(state.hasPrefix("redis://") && state.contains("127.0.0.1:6379"), "\(state)")
            } else {
                Issue.record("no state key in \(String(describing: starting))")
            }
            #expect(starting?["broker"] is String)

            let outcomes = objects.filter { $0["status"] != nil && $0["duration_ms"] != nil }
            func outcome(_ uuid: String, _ status: String) -> [String: Any]? {
                outcomes.first { $0["uuid"] as? String == uuid && $0["status"] as? String == status }
            }
            let succeeded = outcome(success, "success")
            #expect(succeeded?["task"] as? String == "add")
            #expect(succeeded?["queue"] as? String == scope.queue)
            #expect(succeeded?["attempt"] as? String == "1")
            #expect(Double(succeeded?["duration_ms"] as? String ?? "") != nil)
            #expect(outcome(failure, "retry")?["attempt"] as? String == "1", "\(outcomes)")
            #expect(outcome(failure, "error")?["attempt"] as? String == "2", "\(outcomes)")
            #expect(outcome(failure, "error")?["level"] as? String == "error")
        }
    }

    /// A broker password that the broker refuses: the worker fails to start
    /// (exit 4), its error lines are JSON, and they never carry the password.
    @Test func refusedBrokerPasswordIsNeverLogged() async throws {
        let secret = "wr0ng-" + UUID().uuidString.prefix(12)
        guard var components = URLComponents(string: IntegrationEnvironment.url) else {
            Issue.record("unparsable QTASKS_URL")
            return
        }
        components.user = components.user ?? "guest"
        components.password = secret
        let url = components.string!
        let run = try await ChildProcess.run(
            IntegrationEnvironment.workerExecutable,
            ["--url", url, "--queue", IntegrationEnvironment.uniqueQueue("refused"), "--log-format", "json"],
            timeout: 30)
        #expect(run.termination == .exited(4), "\(run)")
        #expect(!run.stderr.contains(secret), "the broker password leaked:\n\(run.stderr)")
        #expect(!run.stdout.contains(secret))
        let objects = Self.jsonLines(run.stderr)
        #expect(objects.contains { $0["level"] as? String == "critical" }, "\(run.stderr)")
    }

    /// Malformed broker and State URLs are refused (exit 64) with messages
    /// that quote the URL, redacted.
    @Test(arguments: ["broker", "state"])
    func malformedURLsAreQuotedRedacted(which: String) async throws {
        let secret = "m4lformed-" + UUID().uuidString.prefix(12)
        var arguments = ["--log-format", "json", "--queue", IntegrationEnvironment.uniqueQueue("malformed")]
        if which == "broker" {
            arguments += ["--url", "amqp://guest:\(secret)@127.0.0.1:notaport/%2F"]
        } else {
            arguments += ["--url", IntegrationEnvironment.url, "--state", "redis://:\(secret)@[bad"]
        }
        let run = try await ChildProcess.run(IntegrationEnvironment.workerExecutable, arguments, timeout: 30)
        #expect(run.termination == .exited(64), "\(run)")
        #expect(!run.stderr.contains(secret), "the password leaked:\n\(run.stderr)")
        if which == "broker" {
            // Refused while the arguments are checked, before logging starts:
            // a usage error on standard error, the URL quoted redacted.
            #expect(run.stderr.contains("invalid AMQP URL 'amqp://guest:***@127.0.0.1:notaport/%2F'"), "\(run.stderr)")
        } else {
            let objects = Self.jsonLines(run.stderr)
            #expect(objects.contains { ($0["message"] as? String)?.contains("***") == true }, "\(run.stderr)")
        }
    }
}
