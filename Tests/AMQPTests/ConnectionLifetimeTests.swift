@testable import AMQP
import Foundation
import Testing

/// Connections and channels release what they hold however they end:
/// dropped without `close()`, or through `withChannel` / `withConnection`
/// on every exit path.
@Suite(.enabled(if: TestBroker.enabled, "no RabbitMQ reachable at QTASKS_URL; deploy/test.sh starts one"))
struct ConnectionLifetimeTests {
    private struct Expected: Error {}

    /// Each connection has an owner thread (named `amqp-<id>`), a socket and
    /// a wake-up pipe. The process-wide counts in /proc move with the tests
    /// that run beside this one, so it counts the threads in /proc/self/task
    /// and the descriptors in /proc/self/fd that these connections own, and
    /// waits for both to go back to the baseline, zero.
    @Test(.timeLimit(.minutes(1)))
    func droppedConnectionsReleaseTheirThreadsAndDescriptors() async throws {
        let count = 8
        var threadNames: Set<String> = []
        var descriptors: [Int32: String] = [:]
        do {
            var connections: [AMQPConnection] = []
            for _ in 0..<count {
                let connection = try await AMQPConnection.connect(TestBroker.configuration)
                // In use, with a channel left open, then dropped.
                let channel = try await connection.openChannel()
                try await channel.setPrefetch(count: 1)
                threadNames.insert("amqp-\(connection.id)")
                for fd in connection.fileDescriptors { descriptors[fd] = ProcessResources.target(of: fd) }
                connections.append(connection)
            }
            // What the test looks for is there while they live, so that its
            // going away below means something.
            #expect(ProcessResources.threads(named: threadNames) == count)
            #expect(descriptors.count == 3 * count)
            #expect(ProcessResources.stillOpen(descriptors) == 3 * count)
            connections.removeAll()
        }
        let released = await ProcessResources.poll(timeout: .seconds(20)) {
            ProcessResources.threads(named: threadNames) == 0 && ProcessResources.stillOpen(descriptors) == 0
        }
        #expect(released, "threads left: \(ProcessResources.threads(named: threadNames)), descriptors left: \(ProcessResources.stillOpen(descriptors))")
    }

    @Test func withChannelClosesTheChannelWhenTheBodyReturns() async throws {
        try await AMQPConnection.withConnection(TestBroker.configuration) { connection in
            let queue = TestBroker.uniqueQueue()
            let escaped = try await connection.withChannel { channel in
                try await channel.declareQueue(queue, durable: false, autoDelete: false)
                return channel
            }
            await #expect { try await escaped.setPrefetch(count: 1) } throws: {
                ($0 as? AMQPError)?.code == .channelClosed
            }
            try await connection.withChannel { channel in _ = try await channel.deleteQueue(queue) }
        }
    }

    /// The close is awaited: a message fetched and not acknowledged is back
    /// in its queue by the time `withChannel` has thrown.
    @Test func withChannelClosesTheChannelWhenTheBodyThrows() async throws {
        try await AMQPConnection.withConnection(TestBroker.configuration) { connection in
            let queue = TestBroker.uniqueQueue()
            try await connection.withChannel { channel in
                try await channel.declareQueue(queue, durable: false, autoDelete: false)
                try await channel.enableConfirms()
                try await channel.publish([1], routingKey: queue)
            }
            var escaped: AMQPChannel?
            await #expect(throws: Expected.self) {
                try await connection.withChannel { channel in
                    escaped = channel
                    #expect(try await channel.get(queue: queue, noAck: false) != nil)
                    throw Expected()
                }
            }
            let channel = try #require(escaped)
            await #expect { try await channel.setPrefetch(count: 1) } throws: {
                ($0 as? AMQPError)?.code == .channelClosed
            }
            try await connection.withChannel { channel in
                #expect(try await channel.declareQueue(queue, passive: true).messageCount == 1)
                _ = try await channel.deleteQueue(queue)
            }
        }
    }

    @Test func withConnectionClosesTheConnectionOnEveryExit() async throws {
        let returned = try await AMQPConnection.withConnection(TestBroker.configuration) { $0 }
        #expect(!returned.isOpen)
        #expect(await returned.closed() == nil)

        var escaped: AMQPConnection?
        await #expect(throws: Expected.self) {
            try await AMQPConnection.withConnection(TestBroker.configuration) { connection in
                escaped = connection
                throw Expected()
            }
        }
        let thrown = try #require(escaped)
        #expect(!thrown.isOpen)
        #expect(await thrown.closed() == nil)
    }
}

/// What this process holds, read from /proc (Linux).
enum ProcessResources {
    /// How many threads of this process carry one of `names` (their
    /// `comm`, at most 15 bytes).
    static func threads(named names: Set<String>) -> Int {
        let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/task")) ?? []
        return tasks.count { task in
            guard let comm = try? String(contentsOfFile: "/proc/self/task/\(task)/comm", encoding: .utf8) else {
                return false
            }
            return names.contains(comm.trimmingCharacters(in: .whitespacesAndNewlines))
        }
    }

    /// What descriptor `fd` refers to (`socket:[inode]`, `pipe:[inode]`),
    /// nil when it is not open.
    static func target(of fd: Int32) -> String? {
        try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/\(fd)")
    }

    /// How many of `descriptors` are still open on the same object: a
    /// number the process has since reused for something else does not
    /// count.
    static func stillOpen(_ descriptors: [Int32: String]) -> Int {
        descriptors.count { fd, target in Self.target(of: fd) == target }
    }

    /// Checks `condition` every 50 ms until it holds (true) or `timeout`
    /// has passed (false).
    static func poll(timeout: Duration, _ condition: () -> Bool) async -> Bool {
        let deadline = ContinuousClock.now + timeout
        while !condition() {
            guard ContinuousClock.now < deadline else { return false }
            try? await Task.sleep(for: .milliseconds(50))
        }
        return true
    }
}
