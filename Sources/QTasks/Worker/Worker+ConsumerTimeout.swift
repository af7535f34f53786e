import Logging

/// The broker's delivery acknowledgement timeout (RabbitMQ's
/// `consumer_timeout`) and the tasks acknowledged on start
/// (``TaskAcknowledgement/onStart``), which it does not bound.
extension Worker {
    /// Acknowledges `delivery` before its task runs; from then on nothing
    /// settles it again (``settle(_:metadata:_:)`` skips it).
    func acknowledgeOnStart(_ delivery: Delivery) async throws {
        let token = delivery.token
        acknowledgedOnStart.withLock { _ = $0.insert(token) }
        do {
            try await shielded { try await $0.acknowledge(delivery) }
        } catch {
            acknowledgedOnStart.withLock { _ = $0.remove(token) }
            throw error
        }
    }

    /// True when `delivery` was acknowledged before its task ran.
    func isAcknowledgedOnStart(_ delivery: Delivery) -> Bool {
        acknowledgedOnStart.withLock { $0.contains(delivery.token) }
    }

    /// Forgets a delivery acknowledged on start, once its task is settled.
    func forgetAcknowledgedOnStart(_ delivery: Delivery) {
        acknowledgedOnStart.withLock { _ = $0.remove(delivery.token) }
    }

    /// A task acknowledged on start and then cancelled by the worker
    /// (shutdown past its grace period, lost connection): the broker no
    /// longer holds its message, so a copy goes back to its queue, to run
    /// again from the start. Unchanged: the same uuid and attempt.
    func republishCancelled(_ delivery: Delivery, metadata: @autoclosure () -> Logger.Metadata) async {
        let queue = delivery.queue
        let message = delivery.message
        var fields = metadata()
        do {
            try await shielded { try await $0.publish(message, to: queue, mandatory: true) }
            fields["reason"] = "cancelled by the worker after it was acknowledged on start"
            configuration.logger.warning("task published to its queue again", metadata: fields)
        } catch {
            fields["error"] = .string(LogText.sanitized(String(describing: error)))
            configuration.logger.error(
                "task acknowledged on start and cancelled by the worker could not be published again: it is lost (at most once)",
                metadata: fields)
        }
    }

    /// Learns the broker's `consumer_timeout` from its reply when it closed
    /// a channel (or refused an ack) for it: `406 PRECONDITION_FAILED -
    /// delivery acknowledgement on channel 1 timed out. Timeout value used:
    /// 10000 ms`. A shorter value than the one in force is used for the
    /// tasks that start from now on, and logged.
    func noteBrokerClose(_ error: any Error) {
        guard let error = error as? BrokerError, error.replyCode == 406, let text = error.replyText,
              let timeout = ConsumerTimeoutBudget.brokerTimeout(inReply: text)
        else { return }
        let configured = consumerTimeoutBudget.timeout
        guard consumerTimeoutBudget.learn(timeout) else { return }
        configuration.logger.error(
            "the broker closed a channel for an unacknowledged delivery (consumer_timeout): tasks are now stopped before its timeout; set the worker's consumer timeout to the broker's",
            metadata: [
                "consumer_timeout_s": .stringConvertible(Seconds.logValue(timeout)),
                "configured_s": .stringConvertible(configured.map(Seconds.logValue) ?? 0),
                "deadline_s": .stringConvertible(consumerTimeoutBudget.deadline.map(Seconds.logValue) ?? 0),
            ])
    }
}
