import AMQP
import Logging

/// Connecting to one node of a cluster out of several endpoints.
enum Failover {
    /// Connects to the first endpoint that accepts, trying each once from
    /// `start` on and wrapping around.
    /// - Throws: with one endpoint, its error; with several, the last
    ///   error, its message naming every endpoint tried and why it failed
    ///   (its code kept when all failed alike, else `.connectionFailed`).
    static func connect(
        _ endpoints: [AMQPConfiguration], startingAt start: Int, logger: Logger
    ) async throws -> (connection: AMQPConnection, endpoint: Int) {
        var failures: [(endpoint: AMQPConfiguration, error: any Error)] = []
        for offset in endpoints.indices {
            let index = (start + offset) % endpoints.count
            let endpoint = endpoints[index]
            do {
                let connection = try await AMQPConnection.connect(endpoint, logger: logger)
                logger.info("connected to RabbitMQ", metadata: ["url": "\(endpoint.redactedURL)"])
                return (connection, index)
            } catch {
                try Task.checkCancellation()
                if endpoints.count > 1 {
                    let isLast = offset == endpoints.count - 1
                    logger.warning(
                        isLast ? "cannot connect to this node, the last one of the list" : "cannot connect to this node; trying the next",
                        metadata: ["url": "\(endpoint.redactedURL)", "error": "\(error)"])
                }
                failures.append((endpoint, error))
            }
        }
        guard endpoints.count > 1 else { throw failures[0].error }
        let amqpErrors = failures.compactMap { $0.error as? AMQPError }
        var combined = amqpErrors.last ?? AMQPError(.connectionFailed, "")
        if amqpErrors.count != failures.count || Set(amqpErrors.map(\.code)).count > 1 {
            combined.code = .connectionFailed
        }
        let reasons = failures.map { "\($0.endpoint.redactedURL): \($0.error)" }.joined(separator: "; ")
        combined.message = "no node of \(endpoints.count) accepted a connection (\(reasons))"
        // The last reply is already in the reasons; keeping it would repeat it.
        combined.replyCode = nil
        combined.replyText = nil
        throw combined
    }
}
