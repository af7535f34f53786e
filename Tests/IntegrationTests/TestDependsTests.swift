import Foundation
import Testing

/// The seed's Depends example (`test_depends` in qtasks-example) on the real
/// broker: the body's line, then the teardown's.
@Suite(.enabled(if: IntegrationEnvironment.enabled, "no RabbitMQ reachable at QTASKS_URL; deploy/test.sh starts one"),
       .timeLimit(.minutes(2)))
struct TestDependsTests {
    @Test func testDependsPrintsTheBodyLineThenCloseAndSucceeds() async throws {
        try await TestScope.run("depends") { scope in
            // One task at a time, so that the two calls' lines cannot interleave.
            let worker = try await scope.startWorker(concurrency: 1)
            for call in 1...2 {
                let reply = try await scope.call("test_depends", on: scope.queue)
                reply.expectDocumented(uuid: nil, taskName: "test_depends", status: "success", returning: .null)
                try await waitUntil("'close...' of call \(call) on the worker's stdout", timeout: 30) {
                    worker.standardOutputText.components(separatedBy: "close...").count - 1 == call
                }
            }
            #expect(
                worker.standardOutputText == "Вызов выполнен\nclose...\nВызов выполнен\nclose...\n",
                "\(worker.standardOutputText)")
            await scope.stopGracefully(worker)
        }
    }
}
