import AMQP
import ArgumentParser
import Foundation

/// `qtasks-benchmark layer-consume`: the `amqp-layer` row's consumer, the
/// project's AMQP layer alone (its owner thread over rabbitmq-c, each
/// delivery into a Swift `AsyncThrowingStream`, read by a Swift task that
/// acks it with `enqueueAck`), with no worker above it. Started and timed
/// as the bare loop and the worker are, so that the three rows split the
/// worker's CPU per task: rabbitmq-c's own work, the AMQP layer's, and the
/// worker's (decoding, running and settling the task).
struct LayerConsumer: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "layer-consume", abstract: "Consume through the AMQP layer alone (started by the benchmark itself).")

    @Option var url: String
    @Option var queue: String
    @Option var prefetch: Int
    @Option var count: Int

    func run() async throws {
        let connection = try await AMQPConnection.connect(try AMQPConfiguration(url: url))
        let channel = try await connection.openChannel()
        try await channel.setPrefetch(count: prefetch)
        let consumer = try await channel.consume(queue: queue)
        print("ready")
        fflush(nil)
        let cpuAtReady = ownCPUSeconds()
        var received = 0
        var start: ContinuousClock.Instant?
        for try await delivery in consumer {
            if start == nil { start = .now }
            try delivery.channel.enqueueAck(deliveryTag: delivery.deliveryTag)
            received += 1
            if received == count { break }
        }
        let seconds = start.map { (ContinuousClock.now - $0) } ?? .zero
        let elapsed = Double(seconds.components.seconds) + Double(seconds.components.attoseconds) / 1e18
        print("drained \(elapsed) cpu \(ownCPUSeconds() - cpuAtReady)")
        fflush(nil)
        // Until the benchmark has read this process's CPU time and stops it.
        while true { pause() }
    }
}
