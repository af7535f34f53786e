import AMQP
import ArgumentParser
import Foundation

/// `qtasks-benchmark bare-consume`: the baseline's bare rabbitmq-c loop
/// (``RawBaseline/consumeAndAck``) in a process of its own, started by the
/// benchmark exactly as it starts the worker under test: after the same
/// prefill, with the same process start and connection set-up before the
/// first delivery, and with its CPU time read from `/proc` over the same
/// span (from its `ready` line to its `drained` line).
struct BareConsumer: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bare-consume", abstract: "Run the baseline's bare rabbitmq-c loop (started by the benchmark itself).")

    @Option var url: String
    @Option var queue: String
    @Option var prefetch: Int
    @Option var count: Int

    func run() throws {
        var cpuAtReady = 0.0
        let seconds = try RawBaseline.consumeAndAck(
            try AMQPConfiguration(url: url), queue: queue, count: count, prefetch: prefetch,
            ready: {
                print("ready")
                fflush(nil)
                cpuAtReady = ownCPUSeconds()
            })
        print("drained \(seconds) cpu \(ownCPUSeconds() - cpuAtReady)")
        fflush(nil)
        // Until the benchmark has read this process's CPU time and stops
        // it (SIGTERM, whose default action ends the process).
        while true { pause() }
    }
}
