import Foundation
import Testing

extension TestScope {
    /// Applies the task queue's policy (`qtasks queues policy apply`): the
    /// dead-letter route to `<queue>.dlq` and the quorum delivery limit,
    /// which are not queue arguments any more. Needs the management API
    /// (`QTASKS_MANAGEMENT_URL`, set by `deploy/test.sh`); the test fails
    /// without it.
    /// `queueType` is for a queue not declared yet (the CLI reads an
    /// existing queue's type itself).
    func applyQueuePolicy(_ queue: String? = nil, queueType: String? = nil, deliveryLimit: Int? = nil) async throws {
        let managementURL = try #require(
            IntegrationEnvironment.managementURL, "QTASKS_MANAGEMENT_URL is not set: deploy/test.sh starts the broker with the management plugin")
        var arguments = ["queues", "policy", "apply", queue ?? self.queue, "--management-url", managementURL]
        if let queueType { arguments += ["--queue-type", queueType] }
        if let deliveryLimit { arguments += ["--delivery-limit", String(deliveryLimit)] }
        let run = try await runCLI(arguments)
        try #require(run.termination == .exited(0), "qtasks queues policy apply: \(run)")
    }
}
