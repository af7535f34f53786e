import AMQP
import Foundation
import QTasks
import RabbitMQManagement
import Testing

/// Task queues that every producer can share, in both start orders
/// (DESIGN.md, "Queues are shared with foreign producers"): the worker
/// declares a task queue plain, so a producer's own plain durable
/// declaration (pika, Celery) is accepted whether it comes first or second;
/// a queue that exists with other arguments is used as it is, with one log
/// line; the protections that used to be queue arguments (dead-lettering by
/// RabbitMQ, quorum delivery limits) hold through the queue's policy.
@Suite(.enabled(if: IntegrationEnvironment.enabled, "no RabbitMQ reachable at QTASKS_URL; deploy/test.sh starts one"),
       .timeLimit(.minutes(3)))
struct SharedQueueTests {
    static let foreignQueueLog = "queue exists with other arguments; using it as it is"

    /// Declares QUEUE with pika (durable; ARGUMENTS as JSON, `{}` for a
    /// plain declaration, as Celery, kombu and QTasks do), then publishes
    /// `add(2, 3)` with `reply_to` REPLY_TO, unless REPLY_TO is empty.
    static let pikaDeclareAndPublish = #"""
        import json, sys, pika
        url, queue, arguments, reply_to, task_id = sys.argv[1:6]
        connection = pika.BlockingConnection(pika.URLParameters(url))
        channel = connection.channel()
        channel.queue_declare(queue, durable=True, arguments=json.loads(arguments) or None)
        if reply_to:
            channel.basic_publish(
                exchange="", routing_key=queue,
                body=json.dumps({"uuid": task_id, "task_name": "add", "args": [2, 3]}),
                properties=pika.BasicProperties(content_type="application/json", delivery_mode=2,
                                                reply_to=reply_to, correlation_id=task_id))
        connection.close()
        print(json.dumps({"declared": queue}))
        """#

    private func pikaDeclare(
        _ scope: TestScope, arguments: String = "{}", publishing: Bool = true
    ) async throws -> String {
        let uuid = UUID().uuidString.lowercased()
        let out = try await PythonProducer.run(
            Self.pikaDeclareAndPublish,
            [IntegrationEnvironment.url, scope.queue, arguments, publishing ? scope.replyQueue : "", uuid],
            importing: "pika")
        #expect(out["declared"] == .string(scope.queue), "\(out)")
        return uuid
    }

    private func expectAddRan(_ scope: TestScope, uuid: String) async throws {
        let reply = try await scope.nextReply("add(2, 3)'s result")
        #expect(reply.correlationID == uuid)
        #expect(reply.status == "success", "\(reply)")
        #expect(reply.returning == .int(5), "\(reply)")
    }

    // MARK: Both start orders

    /// Worker first: pika's plain durable declaration of the worker's queue
    /// is accepted (before, it failed with 406 inequivalent arg
    /// 'x-dead-letter-exchange'), and the task runs.
    @Test func workerFirstThenPikaDeclaresThePlainQueue() async throws {
        try await TestScope.run("shared-pika-second") { scope in
            let worker = try await scope.startFaultWorker([])
            let uuid = try await pikaDeclare(scope)
            try await expectAddRan(scope, uuid: uuid)
            #expect(!worker.standardErrorText.contains(Self.foreignQueueLog), "\(worker.stderrTail())")
            await scope.stopGracefully(worker)
        }
    }

    /// Producer first: pika declares the queue plain and publishes; the
    /// worker started after it declares the same queue without a 406 and
    /// serves it.
    @Test func pikaFirstThenTheWorkerServesTheQueue() async throws {
        try await TestScope.run("shared-pika-first") { scope in
            let uuid = try await pikaDeclare(scope)
            #expect(try await scope.admin.queueInfo(scope.queue)?.messageCount == 1)
            let worker = try await scope.startFaultWorker([])
            try await expectAddRan(scope, uuid: uuid)
            #expect(!worker.standardErrorText.contains(Self.foreignQueueLog), "\(worker.stderrTail())")
            await scope.stopGracefully(worker)
        }
    }

    /// Producer first with the real Celery on a queue of its own (not
    /// Celery's default `celery`): its task waits in the queue Celery
    /// declared, the worker declares the same queue cleanly and runs it, and
    /// Celery's `rpc://` backend gets the result. (Worker first, then
    /// Celery: `CeleryProducerTests`.)
    @Test func celeryFirstThenTheWorkerServesTheQueue() async throws {
        try await TestScope.run("shared-celery-first") { scope in
            let python = try await PythonProducer.python(importing: "celery")
            let script = #"""
                import json, sys
                from celery import Celery
                app = Celery("producer", broker=sys.argv[1], backend="rpc://")
                app.conf.task_default_queue = sys.argv[2]
                app.conf.broker_connection_retry_on_startup = False
                result = app.send_task("add", args=[2, 3])
                print(json.dumps({"value": result.get(timeout=60), "id": result.id}))
                """#
            let producer = try scope.spawn(python, ["-c", script, IntegrationEnvironment.url, scope.queue])
            try await waitUntil("Celery to queue its task in \(scope.queue)", timeout: 30) {
                try await scope.admin.queueInfo(scope.queue)?.messageCount == 1
            }
            let worker = try await scope.startFaultWorker([])
            let ended = await producer.waitForExit(timeout: 60)
            #expect(ended == .exited(0), "\(producer.standardErrorText)")
            let out = try JSONDecoder().decode(JSONValue.self, from: producer.standardOutput)
            #expect(out["value"] == 5, "\(out)")
            #expect(!worker.standardErrorText.contains(Self.foreignQueueLog), "\(worker.stderrTail())")
            await scope.stopGracefully(worker)
            // Celery declared a direct exchange named after its queue.
            await scope.admin.deleteExchange(scope.queue)
        }
    }

    /// `--plain-queue` is no longer needed: still accepted, so that
    /// existing command lines keep working, with one warning.
    @Test func plainQueueFlagIsADeprecatedNoOp() async throws {
        try await TestScope.run("shared-plain-flag") { scope in
            let worker = try await scope.startFaultWorker(["--plain-queue", scope.queue])
            #expect(worker.standardErrorText.contains("--plain-queue is deprecated and has no effect"), "\(worker.stderrTail())")
            await scope.stopGracefully(worker)
        }
    }

    /// Producer first with the real Python QTasks (its RabbitMQ broker
    /// declares `<app>:task_queue` durable and plain, and keeps the task's
    /// status in Redis): the task waits, the worker started after it
    /// declares the same queue cleanly and runs it (QTasks sets no
    /// `reply_to`: its log line shows it). Worker first:
    /// `QTasksProducerTests`.
    @Test(.enabled(if: IntegrationRedis.enabled, "QTasks producers keep task status in Redis; deploy/redis.sh start"))
    func qtasksFirstThenTheWorkerServesTheQueue() async throws {
        let name = "QTasksShared" + UUID().uuidString.prefix(8).lowercased()
        let queue = name + ":task_queue"
        try await TestScope.run("shared-qtasks-first") { scope in
            scope.deleteAtEnd(queue)
            scope.deleteAtEnd(queue + ".dlq")
            let script = #"""
                import asyncio, json, sys
                from qtasks.asyncio import QueueTasks
                from qtasks.brokers import AsyncRabbitMQBroker
                from qtasks.storages import AsyncRedisStorage

                url, redis_url, name = sys.argv[1:4]

                async def main():
                    storage = AsyncRedisStorage(name=name, url=redis_url)
                    broker = AsyncRabbitMQBroker(name=name, url=url, storage=storage)
                    app = QueueTasks(name=name, broker=broker)
                    added = await app.add_task("add", 2, 3)
                    await broker.connection.close()
                    # Its status record is QTasks' own: not read here.
                    async for key in storage.client.scan_iter(f"{name}:*"):
                        await storage.client.delete(key)
                    await storage.client.aclose()
                    print(json.dumps({"queue": broker.queue_name, "uuid": str(added.uuid)}))

                asyncio.run(main())
                """#
            let out = try await PythonProducer.run(
                script, [IntegrationEnvironment.url, IntegrationRedis.url, name], importing: "qtasks", timeout: 90)
            #expect(out["queue"] == .string(queue), "\(out)")
            let uuid = try #require(out["uuid"]?.stringValue, "\(out)")
            #expect(try await scope.admin.queueInfo(queue)?.messageCount == 1)

            let worker = try await scope.startFaultWorker([], queues: [queue])
            try await waitUntil("the worker to run QTasks' task", timeout: 20) {
                worker.standardErrorText.split(separator: "\n").contains { $0.contains("uuid=\(uuid)") && $0.contains("task succeeded") }
            }
            #expect(!worker.standardErrorText.contains(Self.foreignQueueLog), "\(worker.stderrTail())")
            await scope.stopGracefully(worker)
        }
    }

    // MARK: Queues that exist with other arguments

    /// A queue declared Dramatiq's way (its own dead-letter arguments to
    /// `<queue>.XQ`): the worker uses it as it is, says so in one line
    /// naming the argument and what it means, and runs its tasks.
    @Test func queueWithForeignDeadLetterArgumentsIsUsedAsItIs() async throws {
        try await TestScope.run("shared-dramatiq") { scope in
            let arguments = #"{"x-dead-letter-exchange": "", "x-dead-letter-routing-key": "\#(scope.queue).XQ"}"#
            let uuid = try await pikaDeclare(scope, arguments: arguments)
            let worker = try await scope.startFaultWorker([])
            try await expectAddRan(scope, uuid: uuid)
            let lines = worker.standardErrorText.split(separator: "\n").filter { $0.contains(Self.foreignQueueLog) }
            #expect(lines.count == 1, "\(worker.stderrTail())")
            let line = String(lines.first ?? "")
            #expect(line.contains("queue=\(scope.queue)"), "\(line)")
            #expect(line.contains("argument=x-dead-letter-exchange"), "\(line)")
            #expect(line.contains("declared=none"), "\(line)")
            #expect(line.contains("found=''"), "\(line)")
            // One line: the AMQP layer leaves the refused declaration to
            // its caller (debug only).
            #expect(!worker.standardErrorText.contains("channel closed by broker"), "\(worker.stderrTail())")
            #expect(line.contains("the queue dead-letters by its own arguments"), "\(line)")
            await scope.stopGracefully(worker)
        }
    }

    /// A quorum queue declared by another tool (Taskiq's way) for a worker
    /// left at the classic default: used as it is, with the log line; the
    /// policy applied by `qtasks queues policy apply` is in force on it
    /// (management API: `policy` and `effective_policy_definition`), and its
    /// delivery limit acts: a message returned to the queue more often than
    /// the limit is dead-lettered to `<queue>.dlq` with reason
    /// `delivery_limit`.
    @Test(.enabled(if: IntegrationEnvironment.managementURL != nil, "QTASKS_MANAGEMENT_URL is not set (deploy/test.sh sets it)"))
    func foreignQuorumQueueGetsItsDeliveryLimitFromThePolicy() async throws {
        let managementURL = try #require(IntegrationEnvironment.managementURL)
        try await TestScope.run("shared-quorum") { scope in
            let uuid = try await pikaDeclare(scope, arguments: #"{"x-queue-type": "quorum"}"#)
            let apply = try await scope.runCLI(
                ["queues", "policy", "apply", scope.queue, "--delivery-limit", "2", "--management-url", managementURL])
            #expect(apply.termination == .exited(0), "\(apply)")
            #expect(apply.stdout.contains("applied; in force on quorum queue \(scope.queue)"), "\(apply)")

            let api = try RabbitMQManagementAPI(url: managementURL)
            let definition = try #require(try await api.queueDefinition(scope.queue, virtualHost: "/"))
            #expect(definition.type == "quorum")
            #expect(definition.policy == "qtasks.\(scope.queue)")
            #expect(definition.effectivePolicyDefinition["delivery-limit"] == .integer(2), "\(definition)")
            #expect(definition.effectivePolicyDefinition["dead-letter-exchange"] == .string(""), "\(definition)")
            #expect(definition.effectivePolicyDefinition["dead-letter-routing-key"] == .string(scope.deadLetterQueue), "\(definition)")
            #expect(definition.arguments == ["x-queue-type": .string("quorum")], "the worker added no argument")

            let worker = try await scope.startFaultWorker([])
            try await expectAddRan(scope, uuid: uuid)
            let lines = worker.standardErrorText.split(separator: "\n").filter { $0.contains(Self.foreignQueueLog) }
            #expect(lines.count == 1, "\(worker.stderrTail())")
            #expect(lines.first?.contains("argument=x-queue-type") == true, "\(lines)")
            #expect(lines.first?.contains("found='quorum'") == true, "\(lines)")
            await scope.stopGracefully(worker)

            // A message no consumer settles: returned three times (the
            // limit is 2), then dead-lettered by RabbitMQ.
            let returns = #"""
                import json, sys, time, pika
                url, queue = sys.argv[1:3]
                connection = pika.BlockingConnection(pika.URLParameters(url))
                channel = connection.channel()
                channel.confirm_delivery()
                channel.basic_publish(exchange="", routing_key=queue, body=b'{"task_name": "add", "args": [1, 1]}',
                                      properties=pika.BasicProperties(delivery_mode=2))
                # A quorum queue requeues asynchronously: an empty get is not
                # the end; the dead-letter queue's count is.
                returned = 0
                deadline = time.monotonic() + 15
                while time.monotonic() < deadline and returned < 10:
                    if channel.queue_declare(queue + ".dlq", passive=True).method.message_count > 0:
                        break
                    method, properties, body = channel.basic_get(queue)
                    if method is None:
                        time.sleep(0.05)
                        continue
                    channel.basic_reject(method.delivery_tag, requeue=True)
                    returned += 1
                connection.close()
                print(json.dumps({"returned": returned}))
                """#
            let out = try await PythonProducer.run(returns, [IntegrationEnvironment.url, scope.queue], importing: "pika")
            #expect(out["returned"] == 3, "limit 2: delivered and returned 3 times, then dead-lettered: \(out)")
            let dead = try await scope.admin.waitForMessage(in: scope.deadLetterQueue, timeout: 10, "the over-limit message")
            #expect(Self.deathReason(dead) == "delivery_limit")
            try await api.deletePolicy(named: "qtasks.\(scope.queue)", virtualHost: "/")
        }
    }

    // MARK: Quorum queues

    /// Celery with quorum queues (`task_default_queue_type = "quorum"`,
    /// Celery 5.5) declares `x-queue-type: quorum`, as a worker with
    /// `--queue-type quorum` does: worker first, Celery's declaration is
    /// accepted and its task runs.
    @Test func celeryWithQuorumQueuesMatchesAQuorumWorker() async throws {
        try await TestScope.run("shared-celery-quorum") { scope in
            let worker = try await scope.startFaultWorker(["--queue-type", "quorum"])
            let script = #"""
                import json, sys
                from celery import Celery
                app = Celery("producer", broker=sys.argv[1], backend="rpc://")
                app.conf.task_default_queue = sys.argv[2]
                app.conf.task_default_queue_type = "quorum"
                app.conf.broker_connection_retry_on_startup = False
                result = app.send_task("add", args=[2, 3])
                print(json.dumps({"value": result.get(timeout=30)}))
                """#
            let out = try await PythonProducer.run(script, [IntegrationEnvironment.url, scope.queue], importing: "celery")
            #expect(out["value"] == 5, "\(out)")
            #expect(!worker.standardErrorText.contains(Self.foreignQueueLog), "\(worker.stderrTail())")
            await scope.stopGracefully(worker)
            await scope.admin.deleteExchange(scope.queue)
        }
    }

    /// Quorum queues that plain producers can share: on a virtual host whose
    /// default queue type is quorum (`rabbitmqctl add_vhost
    /// --default-queue-type quorum`), a declaration without `x-queue-type`
    /// makes a quorum queue and matches one. The worker, left at the classic
    /// default (no argument), and pika's plain declaration share the queue;
    /// `qtasks queues policy apply` sees its real type and gives it the
    /// delivery limit.
    @Test(.enabled(if: IntegrationEnvironment.managementURL != nil, "QTASKS_MANAGEMENT_URL is not set (deploy/test.sh sets it)"))
    func plainDeclarationsShareQuorumQueuesOnAQuorumDefaultVirtualHost() async throws {
        let managementURL = try #require(IntegrationEnvironment.managementURL)
        let vhost = IntegrationEnvironment.uniqueQueue("vhost-quorum")
        let vhostAdmin = #"""
            import base64, json, sys, urllib.parse, urllib.request
            base, vhost, action = sys.argv[1:4]
            parts = urllib.parse.urlsplit(base)
            auth = base64.b64encode(f"{parts.username}:{parts.password}".encode()).decode()
            root = f"{parts.scheme}://{parts.hostname}:{parts.port}/api"
            name = urllib.parse.quote(vhost, safe="")
            def call(method, path, body=None):
                request = urllib.request.Request(root + path, method=method, data=None if body is None else json.dumps(body).encode(),
                                                 headers={"Authorization": "Basic " + auth, "Content-Type": "application/json"})
                with urllib.request.urlopen(request) as answer:
                    return answer.status
            if action == "create":
                # RabbitMQ 3.10 reads "defaultqueuetype", later versions "default_queue_type".
                call("PUT", f"/vhosts/{name}", {"defaultqueuetype": "quorum", "default_queue_type": "quorum"})
                call("PUT", f"/permissions/{name}/{urllib.parse.quote(parts.username)}", {"configure": ".*", "write": ".*", "read": ".*"})
            else:
                call("DELETE", f"/vhosts/{name}")
            print(json.dumps({"done": action}))
            """#
        _ = try await PythonProducer.run(vhostAdmin, [managementURL, vhost, "create"], importing: "json")
        do {
            try await shareQuorumQueue(onVirtualHost: vhost, managementURL: managementURL)
        } catch {
            _ = try? await PythonProducer.run(vhostAdmin, [managementURL, vhost, "delete"], importing: "json")
            throw error
        }
        // Its queues and policies go with it.
        _ = try await PythonProducer.run(vhostAdmin, [managementURL, vhost, "delete"], importing: "json")
    }

    private func shareQuorumQueue(onVirtualHost vhost: String, managementURL: String) async throws {
        var components = try #require(URLComponents(string: IntegrationEnvironment.url))
        components.percentEncodedPath = "/" + (vhost.addingPercentEncoding(withAllowedCharacters: .alphanumerics.union(CharacterSet(charactersIn: "-"))) ?? vhost)
        let url = try #require(components.string)
        let api = try RabbitMQManagementAPI(url: managementURL)
        #expect(try await api.defaultQueueType(virtualHost: vhost) == "quorum")

        try await TestScope.run("shared-vhost-quorum") { scope in
            let worker = try await FaultWorker.start([], url: url, queues: [scope.queue]) { executable, arguments, environment in
                try scope.spawn(executable, arguments, environment: environment)
            }
            let uuid = UUID().uuidString.lowercased()
            let publish = #"""
                import json, sys, pika
                url, queue, task_id = sys.argv[1:4]
                connection = pika.BlockingConnection(pika.URLParameters(url))
                channel = connection.channel()
                channel.queue_declare(queue, durable=True)
                replies = channel.queue_declare("", exclusive=True).method.queue
                channel.basic_publish(exchange="", routing_key=queue,
                                      body=json.dumps({"uuid": task_id, "task_name": "add", "args": [2, 3]}),
                                      properties=pika.BasicProperties(content_type="application/json", delivery_mode=2,
                                                                      reply_to=replies, correlation_id=task_id))
                for method, properties, body in channel.consume(replies, auto_ack=True, inactivity_timeout=20):
                    print(json.dumps({"result": json.loads(body) if body else None}))
                    break
                connection.close()
                """#
            let out = try await PythonProducer.run(publish, [url, scope.queue, uuid], importing: "pika")
            #expect(out["result"]?["returning"] == 5, "\(out)")
            #expect(!worker.standardErrorText.contains(Self.foreignQueueLog), "\(worker.stderrTail())")

            let apply = try await scope.runCLI(
                ["queues", "policy", "apply", scope.queue, "--delivery-limit", "4", "--management-url", managementURL], url: url)
            #expect(apply.termination == .exited(0), "\(apply)")
            #expect(apply.stdout.contains("applied; in force on quorum queue \(scope.queue)"), "\(apply)")
            let definition = try #require(try await api.queueDefinition(scope.queue, virtualHost: vhost))
            #expect(definition.type == "quorum")
            #expect(definition.effectivePolicyDefinition["delivery-limit"] == .integer(4), "\(definition)")
            await scope.stopGracefully(worker)
        }
    }

    // MARK: Protections through the policy

    /// A body over the broker-side limit (16 MiB) is dropped unread and
    /// rejected by the worker; with the policy applied, RabbitMQ
    /// dead-letters the intact original to `<queue>.dlq` (reason
    /// `rejected`), as the queue's arguments used to make it.
    @Test(.enabled(if: IntegrationEnvironment.managementURL != nil, "QTASKS_MANAGEMENT_URL is not set (deploy/test.sh sets it)"))
    func oversizeMessageIsDeadLetteredThroughThePolicy() async throws {
        let managementURL = try #require(IntegrationEnvironment.managementURL)
        try await TestScope.run("shared-oversize") { scope in
            let worker = try await scope.startFaultWorker([])
            let apply = try await scope.runCLI(["queues", "policy", "apply", scope.queue, "--management-url", managementURL])
            #expect(apply.termination == .exited(0), "\(apply)")
            #expect(apply.stdout.contains("applied; in force on classic queue \(scope.queue)"), "\(apply)")
            let api = try RabbitMQManagementAPI(url: managementURL)
            let definition = try #require(try await api.queueDefinition(scope.queue, virtualHost: "/"))
            #expect(definition.arguments.isEmpty, "declared plain: \(definition.arguments)")
            #expect(definition.effectivePolicyDefinition["dead-letter-routing-key"] == .string(scope.deadLetterQueue))

            let uuid = UUID().uuidString.lowercased()
            var body = Array(#"{"uuid": "\#(uuid)", "task_name": "echo", "args": [""#.utf8)
            body += [UInt8](repeating: UInt8(ascii: "x"), count: 17 * 1_048_576)
            body += Array(#""]}"#.utf8)
            try await scope.publishTask(body, correlationID: uuid, messageID: uuid)
            let reply = try await scope.nextReply(timeout: 60, "the oversize result")
            #expect(reply.status == "error")
            #expect(reply.traceback?.contains("over the limit") == true, "\(reply)")
            let dead = try await scope.admin.waitForMessage(in: scope.deadLetterQueue, timeout: 20, "the oversize message")
            #expect(dead.body.count == body.count, "the intact original")
            #expect(Self.deathReason(dead) == "rejected")
            await scope.stopGracefully(worker)
            try await api.deletePolicy(named: "qtasks.\(scope.queue)", virtualHost: "/")
        }
    }

    /// A policy of the operator's with a higher priority matches the queue:
    /// ours is set but not in force, and `apply` says so and exits 1.
    @Test(.enabled(if: IntegrationEnvironment.managementURL != nil, "QTASKS_MANAGEMENT_URL is not set (deploy/test.sh sets it)"))
    func applyReportsAPolicyThatIsOverruled() async throws {
        let managementURL = try #require(IntegrationEnvironment.managementURL)
        try await TestScope.run("shared-overruled") { scope in
            _ = try await pikaDeclare(scope, publishing: false)
            let api = try RabbitMQManagementAPI(url: managementURL)
            let operatorPolicy = RabbitMQPolicy(
                name: "operator.\(scope.queue)", pattern: "^\(scope.queue)$", applyTo: "queues", priority: 20,
                definition: ["max-length": .integer(1000)])
            try await api.putPolicy(operatorPolicy, virtualHost: "/")
            let apply = try await scope.runCLI(
                ["queues", "policy", "apply", scope.queue, "--management-url", managementURL], timeout: 60)
            #expect(apply.termination == .exited(1), "\(apply)")
            #expect(apply.stdout.contains("applied; NOT in force on classic queue \(scope.queue)"), "\(apply)")
            #expect(apply.stdout.contains("reports policy operator.\(scope.queue)"), "\(apply)")
            try await api.deletePolicy(named: operatorPolicy.name, virtualHost: "/")
            try await api.deletePolicy(named: "qtasks.\(scope.queue)", virtualHost: "/")
        }
    }

    /// `qtasks queues policy show`: the `rabbitmqctl` command for a broker
    /// without the management plugin, shell-quoted; no connection. The
    /// delivery limit only for quorum queues.
    @Test func policyShowPrintsTheRabbitmqctlCommand() async throws {
        let quorum = try await ChildProcess.run(
            IntegrationEnvironment.cliExecutable,
            [
                "queues", "policy", "show", "QueueTasks:task_queue", "orders", "--queue-type", "quorum", "--delivery-limit", "3",
                "--url", "amqp://u:p@h:5672/prod",
            ],
            timeout: 30)
        #expect(quorum.termination == .exited(0), "\(quorum)")
        #expect(
            quorum.stdout.split(separator: "\n").map(String.init) == [
                #"rabbitmqctl set_policy --vhost prod --priority 10 --apply-to queues qtasks.QueueTasks:task_queue '^QueueTasks\:task_queue$' '{"dead-letter-exchange":"","dead-letter-routing-key":"QueueTasks:task_queue.dlq","delivery-limit":3}'"#,
                #"rabbitmqctl set_policy --vhost prod --priority 10 --apply-to queues qtasks.orders '^orders$' '{"dead-letter-exchange":"","dead-letter-routing-key":"orders.dlq","delivery-limit":3}'"#,
            ], "\(quorum)")
        let classic = try await ChildProcess.run(
            IntegrationEnvironment.cliExecutable, ["queues", "policy", "show", "orders", "--url", "amqp://u:p@h:5672/%2F"],
            environment: ["QTASKS_QUEUE_TYPE": ""], timeout: 30)
        #expect(
            classic.stdout == #"rabbitmqctl set_policy --vhost / --priority 10 --apply-to queues qtasks.orders '^orders$' '{"dead-letter-exchange":"","dead-letter-routing-key":"orders.dlq"}'"# + "\n",
            "\(classic)")
    }

    static func deathReason(_ delivery: AMQPDelivery) -> String? {
        guard case .array(let deaths)? = delivery.properties.headers?["x-death"], case .table(let death)? = deaths.first,
            case .string(let reason)? = death["reason"]
        else { return nil }
        return reason
    }
}
