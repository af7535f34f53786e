import Foundation
import TestSupport
import Testing

/// A Redis call keeps its timeout when its process is stopped and
/// continued over and over (job control, a frozen cgroup): hiredis retries
/// a read that the stop interrupted (`EINTR`) with its whole socket timeout
/// each time, which kept a call on a frozen server waiting for as long as
/// the stops went on. The client here is `qtasks state get` (timeout 5 s,
/// the default) against a private Redis frozen with SIGSTOP; the test stops
/// and continues the client every 200 ms for up to 40 s.
@Suite(.enabled(if: IntegrationEnvironment.enabled && PrivateRedis.binary != nil, "needs redis-server and the built CLI"),
       .timeLimit(.minutes(2)))
struct RedisStopContinueTests {
    @Test func aCallStoppedAndContinuedOverAndOverStillEndsAfterItsTimeout() async throws {
        try await PrivateRedis.with { redis in
            redis.freeze()
            defer { redis.thaw() }
            let client = try ChildProcess(IntegrationEnvironment.cliExecutable, ["state", "get", "MyState", "--state", redis.url])
            let start = ContinuousClock.now
            var ended: Termination?
            while ContinuousClock.now - start < .seconds(40) {
                if let exit = client.exitStatus {
                    ended = exit
                    break
                }
                try await Task.sleep(for: .milliseconds(200))
                client.signal(SIGSTOP)
                try await Task.sleep(for: .milliseconds(20))
                client.signal(SIGCONT)
            }
            let elapsed = ContinuousClock.now - start
            if ended == nil { await client.stop(grace: 5) }
            print("redis stop/continue: the client ended after \(elapsed) (\(ended.map { "\($0)" } ?? "still running"))")
            #expect(ended != nil && ended != .exited(0), "still waiting after 40 s of stops: \(client.stderrTail())")
            // 5 s of timeout, and the process's start on a loaded machine.
            #expect(elapsed < .seconds(25))
            #expect(client.standardErrorText.contains("unavailable") || client.standardErrorText.contains("Redis"), "\(client.stderrTail())")
        }
    }
}
