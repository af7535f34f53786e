import Foundation
import Testing

/// The benchmark is measured by hand (docs/performance.md); here only a tiny
/// run checks that it completes and prints every row. No timing is asserted.
@Suite(.enabled(if: IntegrationEnvironment.enabled, "no RabbitMQ reachable at QTASKS_URL; deploy/test.sh starts one"))
struct BenchmarkSmokeTests {
    @Test(.timeLimit(.minutes(4)))
    func tinyRunPrintsEveryRow() async throws {
        let executable = IntegrationEnvironment.productsDirectory.appendingPathComponent("qtasks-benchmark").path
        let prefix = IntegrationEnvironment.uniqueQueue("bench")
        let plot = FileManager.default.temporaryDirectory.appendingPathComponent("\(prefix).svg")
        defer { try? FileManager.default.removeItem(at: plot) }
        // Every row, the opt-in scale row too (two worker processes).
        let rows = "baseline,amqp-layer,drain,results,rpc,enqueue,publish-baseline,batch,depends,state,store-sqlite,dashboard-sqlite,scale"
            + (IntegrationRedis.enabled ? ",store-redis,state-redis" : "")
        let benchmark = try ChildProcess(
            executable,
            [
                "run", "--url", IntegrationEnvironment.url, "--count", "200", "--repetitions", "1", "--rpc-count", "20",
                "--in-flight", "4", "--concurrency", "4", "--prefetch", "16", "--queue-prefix", prefix,
                "--redis-url", IntegrationRedis.url, "--rows", rows, "--scale-workers", "2", "--plot", plot.path,
            ])
        let termination = await benchmark.waitForExit(timeout: 210)
        if termination == nil { _ = await benchmark.stop(grace: 5) }
        let output = benchmark.standardOutputText
        #expect(termination == .exited(0), "stderr: \(String(decoding: benchmark.standardError, as: UTF8.self).suffix(2000))")
        let expected = [
            "1 baseline: rabbitmq-c consume+ack", "1 bare loop CPU per message",
            "1b AMQP layer alone: consume+ack", "1b AMQP layer CPU per message", "2 drain, no reply_to", "2 worker CPU per task",
            "3 drain, results confirmed before ack", "3 worker CPU per task",
            "4 RPC round trip p50", "4 RPC round trip p90", "4 RPC round trip p99", "4 RPC throughput",
            "5 enqueue, Swift client + confirms", "6 worker RSS idle", "6 worker RSS peak under load",
            "7 drain, task + worker dependency", "7 drain, one SQLite State update", "7 worker CPU per task",
            "8 baseline: C publish, confirms", "9 enqueue, batch send (no reply_to)",
            "10 drain + SQLite result store", "10 worker CPU per task, SQLite store", "11 drain + SQLite store + dashboard",
            "12 drain, 2 worker processes", "12 CPU per task, 2 workers (sum)",
        ] + (IntegrationRedis.enabled
            ? ["10 drain + Redis result store", "10 worker CPU per task, Redis store", "7 drain, one Redis State update", "7 worker CPU per task, Redis State"]
            : [])
        for row in expected {
            let line = output.split(separator: "\n").first { $0.hasPrefix(row) }
            #expect(line != nil, "missing row '\(row)' in:\n\(output)")
            // Every figure is a number, and a rate or a CPU time is never zero.
            if let line, let median = line.dropFirst(47).split(separator: " ").dropFirst().first {
                #expect(Double(median).map { $0 > 0 } == true, "row '\(row)' has median \(median)")
            }
        }
        // The plot draws every row of the table, as an SVG document.
        let svg = (try? String(contentsOf: plot, encoding: .utf8)) ?? ""
        #expect(svg.hasPrefix("<svg") && svg.contains("</svg>"), "no SVG plot written to \(plot.path)")
        for row in expected {
            #expect(svg.contains(">\(row)"), "row '\(row)' missing from the plot")
        }
    }
}
