import Foundation
import Logging
import QTasks
import QTasksRabbitMQ
import QTasksResultsRedis
import Testing

/// The real Python QTasks 1.7.3 (pinned in deploy/install-deps.sh),
/// unchanged, reads our worker's results from the Redis result store:
/// `add_task(...)` through its `AsyncRabbitMQBroker` + `AsyncRedisStorage`,
/// then `AsyncResult(uuid).result(timeout=...)`.
///
/// The worker runs in this process (a `Worker` on a `RabbitMQBroker`,
/// recording to a `RedisResultStore` under the QTasks app's name), on
/// QTasks' queue `<name>:task_queue`.
@Suite(.enabled(if: IntegrationEnvironment.enabled, "no RabbitMQ reachable at QTASKS_URL; deploy/test.sh starts one"),
       .timeLimit(.minutes(3)))
struct QTasksResultInteropTests {
    struct ExampleError: Error, CustomStringConvertible {
        var message: String
        var description: String { message }
    }

    /// QTasks 1.7.3's `AsyncRabbitMQBroker` writes the new task's `args`
    /// as Python's `str(args)` (`(2, 3)`), which its own `_build_task`
    /// cannot `json.loads`: until our worker's first write replaces them
    /// with JSON, `AsyncResult.result()` raises `JSONDecodeError`. The
    /// script then asks again (and counts how often that happened); the
    /// Redis broker of QTasks writes JSON and has no such window.
    static let script = #"""
        import asyncio, json, sys
        from qtasks.asyncio import QueueTasks
        from qtasks.brokers import AsyncRabbitMQBroker
        from qtasks.storages import AsyncRedisStorage
        from qtasks.results import AsyncResult

        url, redis_url, name = sys.argv[1:4]
        decode_errors = 0

        async def wait(app, uuid):
            global decode_errors
            while True:
                try:
                    return await AsyncResult(uuid=uuid, app=app).result(timeout=30)
                except json.JSONDecodeError:
                    decode_errors += 1
                    await asyncio.sleep(0.05)

        def summary(task):
            if task is None:
                return None
            return {"uuid": str(task.uuid), "status": task.status, "task_name": task.task_name,
                    "returning": task.returning, "traceback": task.traceback, "args": list(task.args),
                    "kwargs": task.kwargs, "retry": task.retry, "priority": task.priority,
                    "created_at": task.created_at.timestamp(), "updated_at": task.updated_at.timestamp(),
                    "queue": getattr(task, "queue", None), "attempt": getattr(task, "attempt", None),
                    "worker_id": getattr(task, "worker_id", None), "error_type": getattr(task, "error_type", None)}

        async def main():
            storage = AsyncRedisStorage(name=name, url=redis_url)
            broker = AsyncRabbitMQBroker(name=name, url=url, storage=storage)
            app = QueueTasks(name=name, broker=broker)
            added = await app.add_task("add", 2, 3, priority=2)
            failed = await app.add_task("fail", message="no luck")
            add_result = await wait(app, added.uuid)
            fail_result = await wait(app, failed.uuid)
            # What a QTasks reader lists: get_all scans "<name>:*".
            listed = await storage.get_all()
            await broker.connection.close()
            await storage.client.aclose()
            print(json.dumps({"queue": broker.queue_name, "add": summary(add_result), "fail": summary(fail_result),
                              "all": sorted(str(t.uuid) for t in listed), "decode_errors": decode_errors}))

        asyncio.run(main())
        """#

    @Test(.enabled(if: IntegrationRedis.enabled, "no Redis at QTASKS_REDIS_URL; deploy/redis.sh start"))
    func qtasksAsyncResultReadsOurWorkersSuccessAndError() async throws {
        let name = "QTasksIT" + UUID().uuidString.prefix(8).lowercased()
        let queue = name + ":task_queue"
        try await TestScope.run("qtasks-results") { scope in
            scope.deleteAtEnd(queue)
            scope.deleteAtEnd(queue + ".dlq")
            var configuration = ResultStoreConfiguration()
            configuration.keyPrefix = name
            let store = try await RedisResultStore.open(url: IntegrationRedis.url, configuration: configuration)
            defer { Self.deleteKeys(prefix: name) }

            let app = TaskApp()
            try app.register("add", parameters: ["a", "b"]) { (a: Int, b: Int) in a + b }
            try app.register("fail", parameters: ["message"]) { (message: String) -> Int in throw ExampleError(message: message) }
            var logger = Logger(label: "qtasks.integration-tests.qtasks-results")
            logger.logLevel = .warning
            // QTasks declares its queue durable and without arguments, as
            // the worker does every task queue: no setting needed.
            let brokerConfiguration = try RabbitMQBrokerConfiguration(url: IntegrationEnvironment.url)
            let workerID = "it-\(name)"
            var workerConfiguration = WorkerConfiguration(queues: [queue], concurrency: 4, shutdownGracePeriod: .seconds(5), logger: logger)
            workerConfiguration.events = TaskEventRecording(sinks: [store], workerID: workerID)

            // A heartbeat that outlives the run, so that QTasks' get_all
            // surely meets our heartbeat keys.
            let now = Date()
            try await store.recordHeartbeat(
                WorkerHeartbeat(
                    workerID: "probe-\(name)", host: "h", pid: 1, queues: [queue], concurrency: 1, inFlight: 0,
                    processed: 0, failed: 0, retried: 0, startedAt: now, sentAt: now, expiresAt: now.addingTimeInterval(120)))

            let out = try await RabbitMQBroker.withBroker(configuration: brokerConfiguration, logger: logger) { broker in
                let worker = Worker(broker: broker, app: app, configuration: workerConfiguration)
                return try await withThrowingTaskGroup(of: Void.self) { group in
                    group.addTask { try await worker.run() }
                    defer {
                        worker.triggerGracefulShutdown()
                    }
                    // The worker consumes once its queue is declared.
                    try await waitUntil("the worker to consume \(queue)", timeout: 20) {
                        (try await scope.admin.queueInfo(queue)?.consumerCount ?? 0) > 0
                    }
                    let out = try await PythonProducer.run(
                        Self.script, [IntegrationEnvironment.url, IntegrationRedis.url, name], importing: "qtasks",
                        timeout: 90)
                    worker.triggerGracefulShutdown()
                    try await group.waitForAll()
                    return out
                }
            }

            #expect(out["queue"] == .string(queue))
            print("qtasks results: JSONDecodeError before our first write (QTasks 1.7.3's str(args)): \(out["decode_errors"] ?? .null) times")
            // Success: status and value as QTasks reads them.
            let add = try #require(out["add"]?.objectValue, "\(out)")
            #expect(add["status"] == "success")
            #expect(add["returning"] == 5)
            #expect(add["task_name"] == "add")
            #expect(add["args"] == [2, 3])
            #expect(add["kwargs"] == [:])
            #expect(add["retry"] == 0)
            #expect(add["priority"] == 2)
            #expect(add["traceback"] == .null)
            // Our fields, as QTasks' extra fields of its Task.
            #expect(add["queue"] == .string(queue))
            #expect(add["attempt"] == 1)
            #expect(add["worker_id"] == .string(workerID))
            // Error: the traceback carries the message.
            let fail = try #require(out["fail"]?.objectValue, "\(out)")
            #expect(fail["status"] == "error")
            #expect(fail["task_name"] == "fail")
            #expect(fail["returning"] == .null)
            #expect(fail["kwargs"] == ["message": "no luck"])
            let traceback = fail["traceback"]?.stringValue ?? ""
            #expect(traceback.contains("no luck"), "\(traceback)")
            #expect(fail["error_type"]?.stringValue?.contains("ExampleError") == true, "\(fail)")
            // get_all lists the two tasks and nothing of our indexes or
            // heartbeats.
            let uuids = [add["uuid"], fail["uuid"]].compactMap { $0?.stringValue }.sorted()
            #expect(out["all"] == .array(uuids.map(JSONValue.string)), "\(out)")

            // Our side reads the same records, and the worker's heartbeat.
            let record = try #require(try await store.record(for: uuids.first ?? ""))
            #expect(record.isFinished)
            #expect(try await store.records(matching: TaskRecordQuery()).count == 2)
            #expect(try await scope.admin.queueInfo(queue + ".dlq")?.messageCount == 1)
            await store.close()
        }
    }

    /// QTasks' storage reads every record shape we write (its `_build_task`
    /// infers a type for each extra field of ours), and its `get_all` lists
    /// exactly the tasks: no phantoms from our indexes, heartbeats or the
    /// in-flight set.
    static let readerScript = #"""
        import asyncio, json, sys
        from qtasks.storages import AsyncRedisStorage

        redis_url, name = sys.argv[1:3]
        uuids = sys.argv[3:]

        async def main():
            storage = AsyncRedisStorage(name=name, url=redis_url)
            tasks = {}
            for uuid in uuids:
                task = await storage.get(uuid)
                tasks[uuid] = None if task is None else {
                    "status": task.status, "returning": task.returning, "traceback": task.traceback,
                    "args": list(task.args), "kwargs": task.kwargs, "retry": task.retry,
                    "cancel_reason": getattr(task, "cancel_reason", None),
                    "error_message": getattr(task, "error_message", None)}
            listed = sorted(str(t.uuid) for t in await storage.get_all())
            process = await storage.client.zrange(storage.queue_process, 0, -1)
            await storage.client.aclose()
            print(json.dumps({"tasks": tasks, "all": listed, "process": process}))

        asyncio.run(main())
        """#

    @Test(.enabled(if: IntegrationRedis.enabled, "no Redis at QTASKS_REDIS_URL; deploy/redis.sh start"))
    func qtasksStorageReadsEveryStatusAndListsNoPhantoms() async throws {
        let name = "QTasksIT" + UUID().uuidString.prefix(8).lowercased()
        var configuration = ResultStoreConfiguration()
        configuration.keyPrefix = name
        let store = try await RedisResultStore.open(url: IntegrationRedis.url, configuration: configuration)
        defer { Self.deleteKeys(prefix: name) }
        func event(_ kind: TaskEvent.Kind, _ uuid: String, attempt: Int = 1) -> TaskEvent {
            TaskEvent(kind: kind, uuid: uuid, taskName: "job", queue: "default", attempt: attempt, workerID: "host.1.abcd",
                      traceID: "00000000000000000000000000001234")
        }
        func failure(_ message: String) -> TaskEvent.Failure {
            TaskEvent.Failure(type: "JobError", message: message, traceback: "JobError: \(message)")
        }
        let uuid = (0..<5).map { _ in UUID().uuidString.lowercased() }
        var received = event(.received, uuid[0])
        received.arguments = RecordedArguments(args: [1, "два"], kwargs: ["flag": true])
        received.priority = 3
        var retried = event(.retried, uuid[1])
        retried.failure = failure("true")  // reads as a bool extra field in QTasks
        retried.retryDelay = .seconds(5)
        var secret = event(.received, uuid[2])
        secret.arguments = .omitted
        var failed = event(.failed, uuid[3], attempt: 2)
        failed.failure = failure("1e5 ünïcode")
        var deadLettered = event(.deadLettered, uuid[3], attempt: 2)
        deadLettered.deadLetterQueue = "default.dlq"
        try await store.record([
            received, event(.started, uuid[0]),
            event(.received, uuid[1]), event(.started, uuid[1]), retried,
            secret, event(.started, uuid[2]), event(.cancelled, uuid[2]),
            event(.received, uuid[3], attempt: 2), event(.started, uuid[3], attempt: 2), failed, deadLettered,
            event(.received, uuid[4]), event(.started, uuid[4]),
        ])
        var done = event(.succeeded, uuid[4])
        done.result = ["nested": [1, 2.5, "x"]]
        try await store.record([done])
        let now = Date()
        try await store.recordHeartbeat(
            WorkerHeartbeat(
                workerID: "host.1.abcd", host: "host", pid: 1, queues: ["default"], concurrency: 1, inFlight: 1,
                processed: 4, failed: 1, retried: 1, startedAt: now, sentAt: now, expiresAt: now.addingTimeInterval(60)))
        await store.close()

        let out = try await PythonProducer.run(Self.readerScript, [IntegrationRedis.url, name] + uuid, importing: "qtasks")
        let tasks = try #require(out["tasks"]?.objectValue, "\(out)")
        let process = try #require(tasks[uuid[0]]?.objectValue)
        #expect(process["status"] == "process")
        #expect(process["args"] == [1, "два"])
        #expect(process["kwargs"] == ["flag": true])
        let retry = try #require(tasks[uuid[1]]?.objectValue)
        #expect(retry["status"] == "retry")
        #expect(retry["error_message"] == true)
        let cancel = try #require(tasks[uuid[2]]?.objectValue)
        #expect(cancel["status"] == "cancel")
        #expect(cancel["args"] == [] && cancel["kwargs"] == [:])
        #expect(cancel["cancel_reason"] == "")
        let error = try #require(tasks[uuid[3]]?.objectValue)
        #expect(error["status"] == "error")
        #expect(error["traceback"] == "JobError: 1e5 ünïcode")
        #expect(error["retry"] == 1)
        let success = try #require(tasks[uuid[4]]?.objectValue)
        #expect(success["status"] == "success")
        #expect(success["returning"] == ["nested": [1, 2.5, "x"]])
        #expect(out["all"] == .array(uuid.sorted().map(JSONValue.string)), "\(out)")
        #expect(out["process"] == .array([.string("job:\(uuid[0]):3")]), "\(out)")
    }

    /// Deletes every key under `prefix:` (redis-cli).
    static func deleteKeys(prefix: String) {
        guard let components = URLComponents(string: IntegrationRedis.url) else { return }
        let connection = ["-h", components.host ?? "127.0.0.1", "-p", String(components.port ?? 6379),
                          "-n", components.path.count > 1 ? String(components.path.dropFirst()) : "0"]
        let script = "redis-cli \(connection.joined(separator: " ")) --scan --pattern '\(prefix):*' | xargs -r redis-cli \(connection.joined(separator: " ")) DEL > /dev/null"
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = ["-c", script]
        try? process.run()
        process.waitUntilExit()
    }
}
