import QTasks
import QTasksTesting
import Testing

/// The typed API end to end on the in-memory broker: typed sends, typed
/// results, typed failures, batches.
@Suite(.timeLimit(.minutes(1)))
struct TypedMemoryTests {
    @Test func aTypedSendGivesItsTypedResult() async throws {
        try await TestWorker.run(try makeApp()) { client, _ in
            let sum: Int = try await client.send(Tasks.add, 2, 3).value(timeout: .seconds(30))
            #expect(sum == 5)
            let receipt = try await client.send(Tasks.order, "apple", 4).value(timeout: .seconds(30))
            #expect(receipt == Receipt(sku: "apple", quantity: 4, total: 10))
            #expect(try await client.send(Tasks.ping).value(timeout: .seconds(30)) == "pong")
        }
    }

    @Test func aFailedTaskThrowsTheRemoteErrorWithItsUUID() async throws {
        try await TestWorker.run(try makeApp()) { client, _ in
            let handle = try await client.send(Tasks.order, "none", 1)
            let error = await #expect(throws: TaskFailedError.self) {
                _ = try await handle.value(timeout: .seconds(30))
            }
            #expect(error?.code == .failed)
            #expect(error?.errorType == "OutOfStock")
            #expect(error?.message == "none is out of stock")
            #expect(error?.traceback == "OutOfStock: none is out of stock")
            #expect(error?.uuid == handle.uuid)
            #expect(error?.taskName == "order")
        }
    }

    @Test func aTaskWithoutResultGivesNoResult() async throws {
        let remembered = Recorder<String>()
        try await TestWorker.run(try makeApp(remembered: remembered)) { client, _ in
            let value = try await client.send(Tasks.remember, "milk").value(timeout: .seconds(30))
            #expect(value == NoResult())
            #expect(await remembered.values == ["milk"])
        }
    }

    @Test func aResultOfAnotherTypeIsAnUnexpectedResult() async throws {
        try await TestWorker.run(try makeApp()) { client, _ in
            let handle = try await client.send(Tasks.addAsText, 2, 3)
            let error = await #expect(throws: TaskFailedError.self) {
                _ = try await handle.value(timeout: .seconds(30))
            }
            #expect(error?.code == .unexpectedResult)
            // The raw result is still there to read.
            #expect(try await handle.result(timeout: .seconds(1)).returning == 5)
        }
    }

    @Test func aBadArgumentFromAForeignProducerIsATypedInputError() async throws {
        try await TestWorker.run(try makeApp()) { client, _ in
            // By name, as a producer in another language would send it.
            let handle = try await client.send("add", args: [2, "three"])
            let error = await #expect(throws: TaskFailedError.self) {
                _ = try await handle.value(timeout: .seconds(30))
            }
            #expect(error?.errorType == "TaskInputError")
            #expect(error?.message.contains("add()") == true)
        }
    }

    @Test func aBatchIsSentInOrderAndEveryResultArrives() async throws {
        try await TestWorker.run(try makeApp()) { client, broker in
            let calls = (0..<300).map { ($0, 1000) }
            let handles = try await client.send(Tasks.add, batch: calls)
            #expect(handles.count == 300)
            #expect(Set(handles.map(\.uuid)).count == 300)
            for (index, handle) in handles.enumerated() {
                #expect(try await handle.value(timeout: .seconds(30)) == index + 1000)
            }
            let sent = try await client.sendWithoutReply(Tasks.add, batch: [(1, 1), (2, 2)])
            #expect(sent.map(\.taskName) == ["add", "add"])
            #expect(sent.allSatisfy { $0.queue == "default" })
        }
    }

    @Test func aBatchToAClosedClientThrowsABatchSendError() async throws {
        try await TestWorker.run(try makeApp()) { client, _ in
            await client.close()
            let error = await #expect(throws: BatchSendError<Int>.self) {
                _ = try await client.send(Tasks.add, batch: [(1, 2), (3, 4)])
            }
            #expect(error?.sent.isEmpty == true)
            #expect(error?.unsent == 2)
            #expect((error?.error as? TaskClientError)?.code == .closed)
        }
    }

    /// As the README's top-level code does: the scoped client on the main
    /// actor, its body using main-actor state (this does not compile if
    /// the body must be Sendable).
    @MainActor
    @Test func aScopedClientRunsOnTheCallersActor() async throws {
        var sums: [Int] = []
        let broker = MemoryBroker()
        try await TestWorker.run(try makeApp(), broker: broker) { _, broker in
            try await TaskClient.withClient(broker: broker) { client in
                sums.append(try await client.send(Tasks.add, 2, 3).value(timeout: .seconds(30)))
            }
        }
        #expect(sums == [5])
    }

    @Test func aHugeTimeoutWaitsAndANegativeOneChecksOnce() async throws {
        try await TestWorker.run(try makeApp()) { client, _ in
            // Past what a sleep's deadline can hold: waits, no trap.
            let sum = try await client.send(Tasks.add, 2, 3).value(timeout: .seconds(Int64.max))
            #expect(sum == 5)
            // No worker on this queue: a timeout at once, not a hang.
            let handle = try await client.send(Tasks.add, 1, 1, queue: "nobody-serves-this")
            let error = await #expect(throws: TaskClientError.self) { _ = try await handle.value(timeout: .seconds(-5)) }
            #expect(error?.code == .timeout)
        }
    }

    @Test func theDefinitionsQueueRoutesTheTask() async throws {
        let app = TaskApp()
        let report = TaskDefinition("report", returning: String.self, options: TaskOptions(queue: "reports"))
        try app.register(report) { (context: TaskContext) in context.queue }
        var configuration = WorkerConfiguration(shutdownGracePeriod: .seconds(5))
        configuration.queues = ["reports"]
        try await TestWorker.run(app, configuration: configuration) { client, _ in
            let handle = try await client.send(report)
            #expect(handle.queue == "reports")
            #expect(try await handle.value(timeout: .seconds(30)) == "reports")
        }
    }

    @Test func aTypedDefinitionWithoutArgumentsRefusesArguments() async throws {
        try await TestWorker.run(try makeApp()) { client, _ in
            let result = try await client.send("ping", args: [1]).result(timeout: .seconds(30))
            #expect(result.status == .error)
            #expect(result.traceback?.hasPrefix("TaskInputError") == true)
        }
    }
}
