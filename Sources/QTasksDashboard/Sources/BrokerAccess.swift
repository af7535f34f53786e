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

    /// Runs `body` with the connection. Only a failure of the connection
    /// itself (lost, timed out, closed) drops it so the next call
    /// reconnects: a refused queue closes only its channel, and the
    /// caller's own errors leave it alone; other requests share it.
    func withAdmin<T: Sendable>(_ body: @Sendable (DeadLetterQueueAdmin) async throws -> T) async throws -> T {
        let admin = try await connected()
        do {
            return try await body(admin)
        } catch let error as BrokerError where Self.isConnectionFailure(error) {
            if self.admin === admin {
                self.admin = nil
                await admin.close()
            }
            throw error
        }
    }

    static func isConnectionFailure(_ error: BrokerError) -> Bool {
        error.code == .connectionLost || error.code == .connectionFailed || error.code == .closed
            || error.code == .timeout || (error.replyCode ?? 0) >= 500
    }

    private func connected() async throws -> DeadLetterQueueAdmin {
        guard !closed else { throw BrokerError(.closed, "the dashboard is stopping") }
        if let admin { return admin }
        if let connecting { return try await connecting.value }
        let configuration = configuration
        // A passive declare of a queue that does not exist is routine here
        // (the overview probes dead-letter queues): the AMQP layer's
        // channel-close warnings are not for the dashboard's log.
        var logger = logger
        logger.logLevel = max(logger.logLevel, .error)
        let task = Task { [logger] in try await DeadLetterQueueAdmin.connect(configuration, logger: logger) }
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
