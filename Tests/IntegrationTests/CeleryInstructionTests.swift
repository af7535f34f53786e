import AMQP
import Foundation
import QTasks
import Testing

/// The real Celery 5.5.3 (pinned in deploy/install-deps.sh) asks for more
/// than "run this": a countdown, an eta, an expiry, a chain, callbacks,
/// errbacks, a group. Our worker process honours each as a Celery worker
/// would, or refuses it with an error result and a dead letter (#14).
@Suite(.enabled(if: IntegrationEnvironment.enabled, "no RabbitMQ reachable at QTASKS_URL; deploy/test.sh starts one"),
       .timeLimit(.minutes(3)))
struct CeleryInstructionTests {
    static let prelude = #"""
        import json, sys, time
        from datetime import datetime, timedelta, timezone
        from celery import Celery, chain, group

        url, queue = sys.argv[1:3]
        app = Celery("producer", broker=url, backend="rpc://")
        app.conf.task_default_queue = queue
        app.conf.broker_connection_retry_on_startup = False

        def outcome(result, timeout=30):
            try:
                return {"value": result.get(timeout=timeout), "state": result.state, "id": result.id}
            except Exception as error:
                return {"error": type(error).__name__, "module": type(error).__module__,
                        "message": str(error), "state": result.state, "id": result.id}

        def done_after(result, sent):
            # date_done is when our worker made the result (UTC).
            return result.date_done.replace(tzinfo=timezone.utc).timestamp() - sent

        """#

    /// Everything Celery asks that the worker honours, on a queue of the
    /// test's own (`task_default_queue`), in one producer run.
    static let honouredScript = prelude + #"""
        out = {}
        sent = time.time()
        r = app.send_task("add", args=[1, 2], countdown=3)
        out["countdown"] = outcome(r)
        out["countdown_after"] = done_after(r, sent)

        sent = time.time()
        r = app.send_task("add", args=[2, 2], eta=datetime.now(timezone.utc) + timedelta(seconds=2))
        out["eta"] = outcome(r)
        out["eta_after"] = done_after(r, sent)

        # Due in 2 s, expired after 1 s: revoked when it comes due.
        out["expired"] = outcome(app.send_task("add", args=[1, 1], countdown=2, expires=1))
        out["not_expired"] = outcome(app.send_task("add", args=[1, 1], expires=60))

        c = chain(app.signature("add", args=[1, 2]), app.signature("add", args=[3]), app.signature("add", args=[4])).apply_async()
        out["chain"] = outcome(c)
        out["chain_parent"] = outcome(c.parent)
        out["chain_root"] = outcome(c.parent.parent)

        link = app.signature("add", args=[10])
        link_result = link.freeze()
        out["linked_parent"] = outcome(app.send_task("add", args=[1, 2], link=link))
        out["link"] = outcome(link_result)

        errback = app.signature("echo")
        errback_result = errback.freeze()
        failing = app.send_task("fail", kwargs={"message": "сломалось: ошибка ü"}, link_error=errback)
        out["failing"] = outcome(failing)
        out["errback"] = outcome(errback_result)

        g = group(app.signature("add", args=[i, i]) for i in range(4)).apply_async()
        try:
            out["group"] = {"value": g.get(timeout=30)}
        except Exception as error:
            out["group"] = {"error": type(error).__name__, "message": str(error)}

        print(json.dumps(out, ensure_ascii=False))
        """#

    @Test func celeryInstructionsAreHonoured() async throws {
        try await TestScope.run("celery-honoured") { scope in
            _ = try await scope.startWorker(on: scope.queue, arguments: ["--plain-queue", scope.queue])
            let out = try await PythonProducer.run(
                Self.honouredScript, [IntegrationEnvironment.url, scope.queue], importing: "celery", timeout: 150)

            // countdown and eta: the result, made no earlier than asked.
            #expect(out["countdown"]?["value"] == 3, "\(out)")
            let countdownAfter = try #require(out["countdown_after"]?.doubleValue, "\(out)")
            #expect(countdownAfter >= 2.9, "countdown=3 ran after \(countdownAfter) s")
            #expect(out["eta"]?["value"] == 4, "\(out)")
            let etaAfter = try #require(out["eta_after"]?.doubleValue, "\(out)")
            #expect(etaAfter >= 1.9, "eta in 2 s ran after \(etaAfter) s")
            print("celery countdown=3 done after \(countdownAfter) s, eta +2 s done after \(etaAfter) s")

            // expires: Celery's own TaskRevokedError, state REVOKED.
            let expired = try #require(out["expired"])
            #expect(expired["error"] == "TaskRevokedError", "\(expired)")
            #expect(expired["module"] == "celery.exceptions", "\(expired)")
            #expect(expired["state"] == "REVOKED", "\(expired)")
            #expect(expired["message"]?.stringValue?.hasPrefix("expired at ") == true, "\(expired)")
            #expect(out["not_expired"]?["value"] == 2, "\(out)")

            // A chain of three: the last result, and each step's.
            #expect(out["chain"]?["value"] == 10, "\(out)")
            #expect(out["chain_parent"]?["value"] == 6, "\(out)")
            #expect(out["chain_root"]?["value"] == 3, "\(out)")

            // link: the callback got the parent's result first.
            #expect(out["linked_parent"]?["value"] == 3, "\(out)")
            #expect(out["link"]?["value"] == 13, "\(out)")

            // link_error: the failure with its non-ASCII message, and the
            // errback called with the failed task's id.
            let failing = try #require(out["failing"])
            #expect(failing["error"] == "ExampleError", "\(failing)")
            #expect(failing["message"] == "сломалось: ошибка ü", "\(failing)")
            let failedID = try #require(failing["id"])
            #expect(out["errback"]?["value"]?["args"] == [failedID], "\(out)")

            // group: each member ran, GroupResult.get() collects them.
            #expect(out["group"]?["value"] == [0, 2, 4, 6], "\(out)")

            // Only the failing task is dead-lettered (not the expired one).
            try await waitUntil("one dead letter", timeout: 30) {
                try await scope.admin.queueInfo(scope.deadLetterQueue)?.messageCount == 1
            }
            await scope.admin.deleteExchange(scope.queue)
        }
    }

    /// What the worker refuses: each gets an error result naming it, which
    /// Celery raises as TaskInputError, and a dead letter saying the same.
    static let refusedScript = prelude + #"""
        out = {}
        out["soft_time_limit"] = outcome(app.send_task("add", args=[1, 2], soft_time_limit=5))
        out["chord"] = outcome(app.send_task("add", args=[1, 2], chord=app.signature("tsum")))
        out["linked_chain"] = outcome(app.send_task(
            "add", args=[1, 2], link=chain(app.signature("add", args=[1]), app.signature("add", args=[2]))))
        print(json.dumps(out, ensure_ascii=False))
        """#

    @Test func celeryInstructionsThatCannotBeHonouredAreRefused() async throws {
        try await TestScope.run("celery-refused") { scope in
            _ = try await scope.startWorker(on: scope.queue, arguments: ["--plain-queue", scope.queue])
            let out = try await PythonProducer.run(Self.refusedScript, [IntegrationEnvironment.url, scope.queue], importing: "celery")
            let expected: [(String, String)] = [
                ("soft_time_limit", "Celery header timelimit has a soft time limit (5.0 s)"),
                ("chord", "Celery chords are not supported (callback 'tsum'): a chord's join needs swift-qtasks' own workflows (docs/workflows.md)"),
                ("linked_chain", "Celery embed.callbacks[0] is a 'chain' signature"),
            ]
            for (key, message) in expected {
                let result = try #require(out[key], "\(out)")
                #expect(result["error"] == "TaskInputError", "\(key): \(result)")
                #expect(result["state"] == "FAILURE", "\(key): \(result)")
                #expect(result["message"]?.stringValue?.hasPrefix(message) == true, "\(key): \(result)")
            }
            // Each one dead-lettered with that message.
            var reasons: [String] = []
            try await waitUntil("\(expected.count) dead letters", timeout: 30) {
                while let dead = try await scope.admin.get(scope.deadLetterQueue) {
                    reasons.append(dead.properties.headers?["x-qtasks-error-message"]?.text ?? "")
                }
                return reasons.count == expected.count
            }
            for (key, message) in expected {
                #expect(reasons.contains { $0.hasPrefix(message) }, "\(key): \(reasons)")
            }
            await scope.admin.deleteExchange(scope.queue)
        }
    }

    /// While a task with `countdown=30` waits, no delivery of it is held
    /// unacknowledged by the worker (celery/celery#6760): it is ready in a
    /// delay queue of the broker, as the management API reports.
    @Test(.enabled(if: ProcessInfo.processInfo.environment["QTASKS_MANAGEMENT_URL"] != nil,
                   "QTASKS_MANAGEMENT_URL is not set (deploy/test.sh starts the broker with the management plugin)"))
    func aWaitingCountdownHoldsNoUnackedMessage() async throws {
        let managementURL = try #require(ProcessInfo.processInfo.environment["QTASKS_MANAGEMENT_URL"])
        try await TestScope.run("celery-countdown") { scope in
            _ = try await scope.startWorker(on: scope.queue, arguments: ["--plain-queue", scope.queue])
            let script = Self.prelude + #"""
                r = app.send_task("add", args=[1, 2], countdown=30)
                print(json.dumps({"id": r.id}))
                """#
            _ = try await PythonProducer.run(script, [IntegrationEnvironment.url, scope.queue], importing: "celery")
            var rows: [[String: Any]] = []
            // The management API's counts lag by up to a second.
            try await waitUntil("the task ready in a delay queue, nothing unacked (last: \(rows))", timeout: 30) {
                let run = try await scope.runCLI(["inspect", scope.queue, "--json", "--management-url", managementURL])
                guard run.termination == .exited(0),
                      let parsed = try? JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [[String: Any]]
                else { return false }
                rows = parsed
                let task = rows.first { $0["queue"] as? String == scope.queue }
                let delayed = rows.filter { ($0["queue"] as? String)?.hasPrefix(scope.queue + ".retry.") == true }
                return task?["unacked"] as? Int == 0 && task?["ready"] as? Int == 0
                    && delayed.map { $0["ready"] as? Int ?? 0 }.reduce(0, +) == 1
                    && delayed.allSatisfy { $0["unacked"] as? Int == 0 }
            }
            for row in rows {
                if let name = row["queue"] as? String, name.hasPrefix(scope.queue + ".retry.") { scope.deleteAtEnd(name) }
            }
            await scope.admin.deleteExchange(scope.queue)
        }
    }
}
