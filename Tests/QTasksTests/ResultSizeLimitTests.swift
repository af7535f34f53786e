import Foundation
import QTasks
import QTasksTesting
import Synchronization
import Testing

/// A result too large to send (over `WorkerConfiguration.maxResultBytes`,
/// or refused by the broker as larger than its maximum message size)
/// becomes an error result and a dead letter; the task runs once.
/// Runs of `big`, by its argument.
final class Runs: Sendable {
    private let counts = Mutex<[Int: Int]>([:])
    func record(_ count: Int) { counts.withLock { $0[count, default: 0] += 1 } }
    var value: [Int: Int] { counts.withLock { $0 } }
}

@Suite struct ResultSizeLimitTests {
    /// `big(n)` returns a string of n characters; counts its runs.
    func makeApp(runs: Runs) throws -> TaskApp {
        let app = TaskApp(name: "result-size-test")
        try app.register("big") { (count: Int) in
            runs.record(count)
            return String(repeating: "x", count: count)
        }
        return app
    }

    func send(_ count: Int, id: String, to broker: MemoryBroker) async throws {
        broker.declareQueue("replies")
        let message = Message(
            body: Array(#"{"uuid":"\#(id)","task_name":"big","args":[\#(count)]}"#.utf8),
            properties: MessageProperties(contentType: "application/json", correlationID: id, replyTo: "replies"))
        try await broker.publish(message, to: "default", mandatory: true)
    }

    func replies(in broker: MemoryBroker, count: Int) async throws -> [String: TaskResult] {
        #expect(await eventually { broker.messages(in: "replies").count >= count && broker.unackedCount == 0 })
        var results: [String: TaskResult] = [:]
        for message in broker.messages(in: "replies") {
            results[message.properties.correlationID ?? "?"] = try TaskResult(jsonBytes: message.body)
        }
        return results
    }

    @Test func resultOverTheWorkersLimitIsAnErrorAndADeadLetter() async throws {
        let runs = Runs()
        var configuration = quietConfiguration()
        configuration.maxResultBytes = 10_000
        try await TestWorker.run(makeApp(runs: runs), configuration: configuration) { _, broker in
            try await send(20_000, id: "huge", to: broker)
            for index in 0..<5 { try await send(100 + index, id: "small-\(index)", to: broker) }
            let results = try await replies(in: broker, count: 6)
            let huge = try #require(results["huge"])
            #expect(huge.status == .error)
            #expect(huge.returning == nil)
            #expect(huge.traceback?.hasPrefix("ResultTooLargeError: result of ") == true)
            #expect(huge.traceback?.hasSuffix(" bytes exceeds the limit of 10000 bytes") == true, "\(huge.traceback ?? "")")
            for index in 0..<5 {
                #expect(results["small-\(index)"]?.status == .success)
            }
            let dead = broker.messages(in: "default.dlq")
            #expect(dead.count == 1)
            #expect(dead.first?.properties.headers[MessageHeaders.errorType] == .string("ResultTooLargeError"))
            #expect(dead.first?.properties.headers[MessageHeaders.originQueue] == .string("default"))
            #expect(broker.readyCount(in: "default") == 0)
            #expect(runs.value == [20_000: 1, 100: 1, 101: 1, 102: 1, 103: 1, 104: 1])
        }
    }

    @Test func resultTheBrokerRefusesIsAnErrorAndADeadLetter() async throws {
        let runs = Runs()
        var configuration = quietConfiguration()
        configuration.maxResultBytes = nil
        let broker = MemoryBroker()
        broker.maxMessageBytes = 10_000
        try await TestWorker.run(makeApp(runs: runs), configuration: configuration, broker: broker) { _, broker in
            try await send(20_000, id: "huge", to: broker)
            try await send(100, id: "small", to: broker)
            let results = try await replies(in: broker, count: 2)
            let huge = try #require(results["huge"])
            #expect(huge.status == .error)
            #expect(
                huge.traceback?.hasSuffix(" bytes exceeds the broker's maximum message size of 10000 bytes") == true,
                "\(huge.traceback ?? "")")
            #expect(results["small"]?.status == .success)
            #expect(broker.messages(in: "default.dlq").count == 1)
            #expect(broker.readyCount(in: "default") == 0)
            // Not requeued and run again: once.
            try await Task.sleep(for: .milliseconds(200))
            #expect(runs.value == [20_000: 1, 100: 1])
        }
    }

    @Test func resultUnderTheLimitIsPublished() async throws {
        let runs = Runs()
        var configuration = quietConfiguration()
        configuration.maxResultBytes = 10_000
        try await TestWorker.run(makeApp(runs: runs), configuration: configuration) { _, broker in
            try await send(9_000, id: "fits", to: broker)
            let results = try await replies(in: broker, count: 1)
            #expect(results["fits"]?.returning == .string(String(repeating: "x", count: 9_000)))
            #expect(broker.messages(in: "default.dlq").isEmpty)
        }
    }

    @Test func defaultLimitIsEightMebibytes() {
        #expect(WorkerConfiguration().maxResultBytes == 8_388_608)
    }
}
