import Foundation
import Testing

/// The executables with the TLS options: `qtasks-example` and `qtasks send`
/// over TLS, given `--tls-ca` (deploy/test.sh sets QTASKS_TEST_TLS_*; see
/// AMQPTests' TLSConnectionTests).
@Suite(
    .enabled(
        if: ProcessInfo.processInfo.environment["QTASKS_TEST_TLS_URL"] != nil && IntegrationEnvironment.enabled,
        "no TLS listener configured (QTASKS_TEST_TLS_URL); deploy/test.sh starts one"),
    .timeLimit(.minutes(2)))
struct TLSCLITests {
    private let environment = ProcessInfo.processInfo.environment
    private var tlsURL: String { environment["QTASKS_TEST_TLS_URL"] ?? "" }
    private func file(_ name: String) -> String { (environment["QTASKS_TEST_TLS_DIR"] ?? "") + "/" + name }

    @Test func theWorkerAndSendRunOverTLSWithTheTLSOptions() async throws {
        try await TestScope.run("cli-tls") { scope in
            let worker = try scope.spawn(
                IntegrationEnvironment.workerExecutable,
                ["--url", tlsURL, "--tls-ca", file("ca.pem"), "--queue", scope.queue, "--log-level", "info"])
            try await worker.waitUntilConsuming()
            let run = try await scope.runCLI(
                ["send", "add", "2", "3", "--queue", scope.queue, "--wait", "20", "--tls-ca", file("ca.pem")], url: tlsURL)
            #expect(run.termination == .exited(0), "\(run)")
            #expect(run.stdout.contains(#""returning":5,"#), "\(run)")

            // A CA that did not sign the broker's certificate: exit 4, saying
            // so, with the password redacted.
            let untrusted = try await scope.runCLI(
                ["send", "add", "1", "1", "--queue", scope.queue, "--wait", "5", "--tls-ca", file("other-ca.pem")],
                url: tlsURL)
            #expect(untrusted.termination == .exited(4), "\(untrusted)")
            #expect(untrusted.stderr.contains("not trusted"), "\(untrusted)")
            #expect(!untrusted.stderr.contains(":guest@"), "\(untrusted)")

            // TLS options with a plain URL are a usage error.
            let plain = try await scope.runCLI(
                ["send", "add", "1", "1", "--queue", scope.queue, "--tls-ca", file("ca.pem")])
            #expect(plain.termination == .exited(64), "\(plain)")
            #expect(plain.stderr.contains("amqps://"), "\(plain)")
        }
    }
}
