import AMQP
import Foundation
import Synchronization
import TestSupport
import Testing

/// `connection.blocked`: with a memory alarm raised, publishes are held (not
/// written into a socket the broker no longer reads) and go out, all of them
/// confirmed, once the alarm clears.
@Suite(
    .enabled(if: TestBroker.enabled && PrivateRabbitMQ.available, "needs RabbitMQ installed (deploy/install-deps.sh)"),
    .serialized)
struct ResourceAlarmTests {
    @Test(.timeLimit(.minutes(2)))
    func publishesPauseWhileBlockedAndResumeWhenUnblocked() async throws {
        let broker = try await PrivateRabbitMQ.start(port: PrivateRabbitMQ.port(offset: 0))
        do {
            try await run(on: broker)
        } catch {
            _ = try? await broker.ctl("set_vm_memory_high_watermark", "0.4")
            await broker.stop()
            throw error
        }
        await broker.stop()
    }

    private func run(on broker: PrivateRabbitMQ) async throws {
        let connection = try await AMQPConnection.connect(broker.configuration)
        let events = Recorder()
        try await connection.onBlockedChange { reason in events.blockedChanged(reason) }
        let channel = try await connection.openChannel()
        let queue = TestBroker.uniqueQueue("alarm")
        try await channel.declareQueue(queue, durable: false, autoDelete: false)
        try await channel.enableConfirms()
        try await channel.publish([0], routingKey: queue)

        try await broker.ctl("set_vm_memory_high_watermark", "0.0000001")
        let publishing = Task {
            try await withThrowingTaskGroup(of: Void.self) { group in
                for index in 1...20 {
                    group.addTask {
                        try await channel.publish([UInt8(index)], routingKey: queue)
                        events.confirmed()
                    }
                }
                try await group.waitForAll()
            }
        }
        // The broker blocks a connection when it next publishes.
        let deadline = ContinuousClock.now + .seconds(30)
        while events.changes.isEmpty && ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(50))
        }
        let blockedReason = events.changes.first
        #expect(blockedReason != nil, "no connection.blocked within 30 s")
        try await Task.sleep(for: .seconds(1))
        let whileBlocked = events.confirmations
        #expect(whileBlocked < 20, "every publish was confirmed while the broker was blocking")
        #expect(connection.isOpen)

        try await broker.ctl("set_vm_memory_high_watermark", "0.4")
        try await publishing.value
        #expect(events.confirmations == 20)
        #expect(events.changes.last == .some(nil), "no connection.unblocked seen")
        let info = try await channel.declareQueue(queue, passive: true)
        #expect(info.messageCount == 21)
        try await channel.deleteQueue(queue)
        await connection.close()
    }
}

/// What the alarm test observes, from the owner thread and from publishers.
private final class Recorder: Sendable {
    private let state = Mutex<(changes: [String?], confirmations: Int)>(([], 0))

    func blockedChanged(_ reason: String?) { state.withLock { $0.changes.append(reason) } }
    func confirmed() { state.withLock { $0.confirmations += 1 } }
    var changes: [String?] { state.withLock { $0.changes } }
    var confirmations: Int { state.withLock { $0.confirmations } }
}
