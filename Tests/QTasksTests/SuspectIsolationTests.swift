import Foundation
import QTasks
import QTasksTesting
import Synchronization
import Testing

/// A suspect delivery (`x-delivery-count` ≥ 1: an earlier delivery of it
/// ended unsettled, by a crash or a lost connection) runs alone (#17 item
/// 1): nothing else runs beside it, the deliveries buffered behind it are
/// handed back as fresh copies (their counts not raised), then everything
/// runs. On the memory broker, which pauses its consumer as RabbitMQBroker
/// does.
@Suite struct SuspectIsolationTests {
    /// What ran beside what.
    final class Probe: Sendable {
        private struct State {
            var running = 0
            var besideSuspect: Int?
            var runs: [String: Int] = [:]
        }
        private let state = Mutex(State())

        func run(_ uuid: String, suspect: Bool) async throws {
            state.withLock { state in
                state.running += 1
                state.runs[uuid, default: 0] += 1
                if suspect { state.besideSuspect = state.running - 1 }
            }
            try await Task.sleep(for: .milliseconds(suspect ? 100 : 30))
            state.withLock { $0.running -= 1 }
        }

        var besideSuspect: Int? { state.withLock { $0.besideSuspect } }
        var runs: [String: Int] { state.withLock { $0.runs } }
    }

    @Test func aSuspectDeliveryRunsAloneAndTheBufferedOnesAreHandedBack() async throws {
        let probe = Probe()
        let app = TaskApp(name: "suspects")
        try app.register("work", parameters: ["id", "suspect"]) { (id: String, suspect: Bool) in
            try await probe.run(id, suspect: suspect)
            return id
        }
        let broker = MemoryBroker()
        try await broker.declareTaskQueue("default")
        broker.declareQueue("replies")
        func publish(_ id: String, suspect: Bool) async throws {
            var properties = MessageProperties(contentType: "application/json", correlationID: id, replyTo: "replies")
            if suspect { properties.headers["x-delivery-count"] = .int(1) }
            let body = #"{"uuid": "\#(id)", "task_name": "work", "args": ["\#(id)", \#(suspect)]}"#
            try await broker.publish(Message(body: Array(body.utf8), properties: properties), to: "default", mandatory: true)
        }
        // Queued before the worker starts: all of it is prefetched at once.
        var ids: [String] = []
        for index in 0..<6 {
            ids.append("before-\(index)")
            try await publish("before-\(index)", suspect: false)
        }
        try await publish("suspect", suspect: true)
        for index in 0..<6 {
            ids.append("after-\(index)")
            try await publish("after-\(index)", suspect: false)
        }
        try await TestWorker.run(app, configuration: quietConfiguration(concurrency: 4, prefetch: 20), broker: broker) { _, broker in
            let answered = await eventually {
                broker.messages(in: "replies").count >= ids.count + 1
            }
            #expect(answered, "replies: \(broker.messages(in: "replies").count)")
            #expect(await eventually { broker.unackedCount == 0 && broker.readyCount(in: "default") == 0 })
        }
        #expect(probe.besideSuspect == 0, "tasks ran beside the suspect: \(String(describing: probe.besideSuspect))")
        // Every task ran once: the handed-back copies are not lost or doubled.
        #expect(probe.runs.count == ids.count + 1)
        #expect(probe.runs.values.allSatisfy { $0 == 1 }, "\(probe.runs)")
        #expect(broker.readyCount(in: "default.dlq") == 0)
    }

    /// A handed-back copy of a suspect keeps its count in
    /// `x-qtasks-prior-deliveries`: still a suspect.
    @Test func priorDeliveriesAddUp() {
        func delivery(_ headers: [String: HeaderValue]) -> Delivery {
            Delivery(
                message: Message(body: [], properties: MessageProperties(headers: headers)), queue: "q", redelivered: false,
                token: DeliveryToken(generation: 1, tag: 1))
        }
        #expect(Worker.priorDeliveries(delivery([:])) == nil)
        #expect(Worker.priorDeliveries(delivery(["x-delivery-count": .int(0)])) == 0)
        #expect(Worker.priorDeliveries(delivery(["x-delivery-count": .int(2)])) == 2)
        #expect(Worker.priorDeliveries(delivery(["x-delivery-count": .int(0), MessageHeaders.priorDeliveries: .int(1)])) == 1)
        #expect(Worker.priorDeliveries(delivery(["x-delivery-count": .int(1), MessageHeaders.priorDeliveries: .int(2)])) == 3)
        // A producer's hostile values neither trap nor go negative.
        #expect(Worker.priorDeliveries(delivery([MessageHeaders.priorDeliveries: .double(1e300)])) == 1_000_000)
        #expect(Worker.priorDeliveries(delivery(["x-delivery-count": .int(.max), MessageHeaders.priorDeliveries: .int(.max)])) == 2_000_000)
        #expect(Worker.priorDeliveries(delivery([MessageHeaders.priorDeliveries: .int(-5)])) == 0)
        #expect(Worker.priorDeliveries(delivery([MessageHeaders.priorDeliveries: .string("x")])) == nil)
    }
}
