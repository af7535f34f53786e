import Foundation
import Logging
import QTasks
import QTasksRabbitMQ

/// One admin connection to the broker, opened on first use and opened
/// again after a failure: the dashboard keeps serving its other pages
/// while the broker is down, and recovers without a restart.
actor BrokerAccess {
    private let configuration: RabbitMQBrokerConfiguration
    private let logger: Logger
    private var admin: DeadLetterQueueAdmin?
    private var connecting: Task<DeadLetterQueueAdmin, any Error>?
    private var closed = false

    init(configuration: RabbitMQBrokerConfiguration, logger: Logger) {
        self.configuration = configuration
        self.logger = logger
    }

    /// Runs `body` with the connection; a failure other than a refused
    /// queue (404, 406) drops the connection so the next call reconnects.
    func withAdmin<T: Sendable>(_ body: @Sendable (DeadLetterQueueAdmin) async throws -> T) async throws -> T {
        let admin = try await connected()
        do {
            return try await body(admin)
        } catch let error as BrokerError where error.code == .refused && error.replyCode != nil && error.replyCode! < 500 {
            throw error
        } catch {
            if self.admin === admin {
                self.admin = nil
                await admin.close()
            }
            throw error
        }
    }

    private func connected() async throws -> DeadLetterQueueAdmin {
        guard !closed else { throw BrokerError(.closed, "the dashboard is stopping") }
        if let admin { return admin }
        if let connecting { return try await connecting.value }
        let configuration = configuration
        let logger = logger
        let task = Task { try await DeadLetterQueueAdmin.connect(configuration, logger: logger) }
        connecting = task
        defer { connecting = nil }
        let admin = try await task.value
        if closed {
            await admin.close()
            throw BrokerError(.closed, "the dashboard is stopping")
        }
        self.admin = admin
        return admin
    }

    func close() async {
        closed = true
        if let admin {
            self.admin = nil
            await admin.close()
        }
    }
}
