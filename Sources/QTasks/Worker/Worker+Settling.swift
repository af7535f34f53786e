import Foundation
import Logging
import Synchronization

/// Settling a delivery once its task has run: the result to `reply_to`,
/// the retry copy or the dead-letter copy, each confirmed by the broker
/// before the ack; a failed publish requeues the delivery instead.
extension Worker {
    /// Publishes the result to `reply_to` in the request's format
    /// (``ResultReply``); true when there is nothing to publish.
    func publishReply(
        _ result: TaskResult, failure: TaskFailure? = nil, for delivery: Delivery,
        metadata: @autoclosure () -> Logger.Metadata
    ) async -> Bool {
        // Persistent when the task was: a durable reply queue (one that a
        // producer declared itself to outlive its connection) then keeps
        // the result across a broker restart. RabbitMQ does not write a
        // persistent message in a non-durable queue (the usual exclusive
        // reply queue) to disk, so this costs nothing there.
        guard var reply = ResultReply.message(for: result, failure: failure, request: delivery.message.properties),
            let replyTo = delivery.message.properties.replyTo
        else { return true }
        // So that the producer can continue the task's trace.
        injectTraceContext(into: &reply)
        // Mandatory, so that a reply_to naming no queue (a typo, a client
        // long gone) is seen and logged instead of vanishing; the task itself
        // ran, so its delivery is still acknowledged.
        let logger = configuration.logger
        let fields = metadata()
        return await publish(for: delivery, metadata: fields) { [reply] broker in
            do {
                try await broker.publish(reply, to: replyTo, mandatory: true)
            } catch let error as BrokerError where error.code == .unroutable {
                var fields = fields
                fields["reply_to"] = .string(LogText.sanitized(replyTo))
                logger.warning("result dropped: no queue named by its reply_to", metadata: fields)
            }
        }
    }

    /// The message with the worker's failure bookkeeping: the broker's own
    /// dead-letter history dropped, the first failure time kept (or set),
    /// the last error recorded, the trace context of this attempt.
    /// The uuid the worker gave a task whose body and properties named none
    /// goes into the copy's `message_id`: the uuid then stays the same
    /// across retries (the result's correlation id too) and can be found in
    /// the dead-letter queue.
    func failureCopy(of delivery: Delivery, failure: TaskFailure, uuid: String, now: Double) -> Message {
        var copy = delivery.message
        if copy.properties.messageID == nil || copy.properties.messageID?.isEmpty == true {
            copy.properties.messageID = uuid
        }
        for key in MessageHeaders.brokerDeathHeaders { copy.properties.headers[key] = nil }
        if copy.properties.headers[MessageHeaders.firstFailedAt] == nil {
            copy.properties.headers[MessageHeaders.firstFailedAt] = .double(now)
        }
        copy.properties.headers[MessageHeaders.errorType] = .string(failure.errorType)
        copy.properties.headers[MessageHeaders.errorMessage] = .string(failure.message)
        // The failed attempt's span becomes the parent of the next one (or
        // of whoever replays the dead letter): attempts chain in one trace.
        injectTraceContext(into: &copy)
        return copy
    }

    /// Publishes the next attempt, delayed by the broker; returns the delay
    /// applied, nil when publishing failed (the delivery was then requeued).
    func publishRetry(
        _ delivery: Delivery,
        failure: TaskFailure,
        uuid: String,
        attempt: Int,
        delay: Duration,
        transient: TransientRetryCount? = nil,
        metadata: @autoclosure () -> Logger.Metadata
    ) async -> Duration? {
        // A delay from a task's `TaskRetry(after:)` or a policy is not
        // trusted to be sane: negative is none, huge is about 31 years.
        let delay = Seconds.clamped(delay)
        var copy = failureCopy(of: delivery, failure: failure, uuid: uuid, now: Date().timeIntervalSince1970)
        copy.properties.headers[MessageHeaders.attempt] = .int(Int64(attempt + 1))
        copy.properties.headers[MessageHeaders.retryDelay] = .double(Seconds.double(delay))
        if let transient {
            // A transient-error retry: counted apart from the task's own.
            copy.properties.headers.merge(transient.next(now: Date().timeIntervalSince1970)) { $1 }
        }
        let queue = delivery.queue
        let applied = Mutex(delay)
        let published = await publish(for: delivery, metadata: metadata(), redeclaring: queue) { [copy] broker in
            if let delaying = broker as? any DelayedPublishing {
                let actual = try await delaying.publish(copy, to: queue, after: delay)
                applied.withLock { $0 = actual }
            } else {
                try await broker.publish(copy, to: queue, mandatory: true)
                applied.withLock { $0 = .zero }
            }
        }
        return published ? applied.withLock { $0 } : nil
    }

    func deadLetter(
        _ delivery: Delivery,
        failure: TaskFailure,
        uuid: String,
        attempts: Int,
        metadata: @autoclosure () -> Logger.Metadata
    ) async -> Bool {
        let now = Date().timeIntervalSince1970
        var copy = failureCopy(of: delivery, failure: failure, uuid: uuid, now: now)
        copy.properties.headers[MessageHeaders.originQueue] = .string(delivery.queue)
        copy.properties.headers[MessageHeaders.failedAt] = .double(now)
        copy.properties.headers[MessageHeaders.attempts] = .int(Int64(attempts))
        copy.properties.headers[MessageHeaders.retryDelay] = nil
        let queue = QueueNaming.deadLetterQueue(for: delivery.queue)
        // Mandatory: a missing dead-letter queue must not swallow the copy.
        return await publish(for: delivery, metadata: metadata(), redeclaring: delivery.queue) { [copy] in
            try await $0.publish(copy, to: queue, mandatory: true)
        }
    }

    /// Runs a publish made for `delivery`. When it fails, the delivery is
    /// requeued after a pause (so a broker that keeps refusing does not get
    /// a hot loop), never left unacknowledged on a live connection. A
    /// mandatory publish that found no queue gets one more try after
    /// `redeclaring` (the task queue, with its dead-letter queue) was
    /// declared again: someone may have deleted it.
    func publish(
        for delivery: Delivery,
        metadata: @autoclosure () -> Logger.Metadata,
        redeclaring: String? = nil,
        _ step: @escaping @Sendable (any Broker) async throws -> Void
    ) async -> Bool {
        do {
            try await shielded(step)
            return true
        } catch let error as BrokerError where error.code == .unroutable && redeclaring != nil {
            do {
                try await shielded { broker in
                    try await broker.declareTaskQueue(redeclaring!)
                    try await step(broker)
                }
                return true
            } catch {
                await requeueAfterFailedPublish(delivery, error: error, metadata: metadata())
                return false
            }
        } catch {
            await requeueAfterFailedPublish(delivery, error: error, metadata: metadata())
            return false
        }
    }

    func requeueAfterFailedPublish(_ delivery: Delivery, error: any Error, metadata: Logger.Metadata) async {
        var fields = metadata
        fields["error"] = .string(LogText.sanitized(String(describing: error)))
        configuration.logger.error("publish failed; requeueing the delivery", metadata: fields)
        // Not when cancelled: then the session is ending and requeues anyway.
        try? await Task.sleep(for: .seconds(1))
        await requeue(delivery, reason: "a publish for it failed", metadata: metadata)
    }

    func requeue(_ delivery: Delivery, reason: String, metadata: @autoclosure () -> Logger.Metadata = [:]) async {
        if await settle(delivery, metadata: metadata(), { try await $0.reject(delivery, requeue: true) }) {
            var fields = metadata()
            fields["reason"] = .string(reason)
            configuration.logger.warning("delivery requeued", metadata: fields)
        }
    }

    /// Runs one broker step of settling a delivery; on failure logs it and
    /// returns false. A delivery of a lost connection cannot be settled any
    /// more; the broker has requeued it by itself.
    func settle(
        _ delivery: Delivery,
        metadata: @autoclosure () -> Logger.Metadata,
        _ step: @escaping @Sendable (any Broker) async throws -> Void
    ) async -> Bool {
        do {
            try await shielded(step)
            return true
        } catch let error as BrokerError where error.code == .staleDelivery {
            var fields = metadata()
            fields["error"] = .string(LogText.sanitized(String(describing: error)))
            configuration.logger.warning("delivery belongs to a lost connection; the broker redelivers it", metadata: fields)
            return false
        } catch {
            var fields = metadata()
            fields["error"] = .string(LogText.sanitized(String(describing: error)))
            configuration.logger.error("broker operation failed; the broker redelivers the message", metadata: fields)
            return false
        }
    }

    /// Runs a broker step. A cancelled task (shutdown deadline, lost
    /// connection) still has to settle its delivery, and a broker may
    /// refuse to start work in a cancelled task, so then the step runs in a
    /// task of its own, shielded from the cancellation. Only that rare path
    /// pays for the extra task.
    func shielded(_ step: @escaping @Sendable (any Broker) async throws -> Void) async throws {
        if Task.isCancelled {
            let broker = self.broker
            try await Task { try await step(broker) }.value
        } else {
            try await step(broker)
        }
    }
}
