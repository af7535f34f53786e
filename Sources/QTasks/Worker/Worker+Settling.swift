import Foundation
import Logging
import Synchronization

/// Settling a delivery once its task has run: the result to `reply_to`,
/// the retry copy or the dead-letter copy, each confirmed by the broker
/// before the ack; a failed publish requeues the delivery instead.
extension Worker {
    /// How publishing a task's result went.
    enum ResultPublication {
        /// Confirmed by the broker, or there was nothing to publish.
        case published
        /// The publish failed and the delivery was requeued.
        case requeued
        /// Not published: over ``WorkerConfiguration/maxResultBytes``, or
        /// refused by the broker as too large. The delivery is untouched.
        case tooLarge(ResultTooLargeError)
    }

    /// The reply a result needs, before anything is published.
    enum PreparedReply {
        /// Nothing to publish: no `reply_to`, or a workflow's start.
        case none
        /// Over ``WorkerConfiguration/maxResultBytes``: not to be sent.
        case tooLarge(ResultTooLargeError)
        /// The reply, trace context included, and the queue it goes to.
        case reply(Message, replyTo: String)
    }

    /// The result's reply to `reply_to` in the request's format
    /// (``ResultReply``), or why there is none to send.
    func prepareReply(_ result: TaskResult, failure: TaskFailure? = nil, for delivery: Delivery) -> PreparedReply {
        let limit = configuration.maxResultBytes
        // A workflow's starting message: the workflow's result goes to its
        // sender when the workflow ends (WorkflowPlan), not this step's.
        if result.taskName == WorkflowContext.startTaskName, failure == nil { return .none }
        guard var reply = ResultReply.message(for: result, failure: failure, request: delivery.message.properties),
            let replyTo = delivery.message.properties.replyTo
        else {
            // No reply, but the recorded events carry the result: the same
            // limit holds for them (one rule, whoever reads the result).
            if let limit, configuration.events != nil, result.returning != nil {
                let size = result.jsonBytes().count
                if size > limit { return .tooLarge(ResultTooLargeError(size: size, limit: .worker(limit))) }
            }
            return .none
        }
        let size = reply.body.count
        // Checked before publishing: a broker that refuses a message as
        // too large closes the channel, failing other tasks' publishes.
        if let limit, size > limit { return .tooLarge(ResultTooLargeError(size: size, limit: .worker(limit))) }
        // So that the producer can continue the task's trace.
        injectTraceContext(into: &reply)
        return .reply(reply, replyTo: replyTo)
    }

    /// Publishes the result to `reply_to` in the request's format
    /// (``ResultReply``), unless it is too large: then nothing is
    /// published and the caller settles the delivery as failed
    /// (``settleOversizeResult(_:_:for:metadata:beforeAck:)``).
    func publishResult(
        _ result: TaskResult, failure: TaskFailure? = nil, for delivery: Delivery,
        metadata: @escaping @Sendable () -> Logger.Metadata
    ) async -> ResultPublication {
        // Persistent when the task was: a durable reply queue (one that a
        // producer declared itself to outlive its connection) then keeps
        // the result across a broker restart. RabbitMQ does not write a
        // persistent message in a non-durable queue (the usual exclusive
        // reply queue) to disk, so this costs nothing there.
        let reply: Message, replyTo: String
        switch prepareReply(result, failure: failure, for: delivery) {
        case .none: return .published
        case .tooLarge(let error): return .tooLarge(error)
        case .reply(let message, let queue): (reply, replyTo) = (message, queue)
        }
        let size = reply.body.count
        // Mandatory, so that a reply_to naming no queue (a typo, a client
        // long gone) is seen and logged instead of vanishing; the task itself
        // ran, so its delivery is still acknowledged. The log metadata is
        // built only when something is logged.
        let logger = configuration.logger
        let refused = Mutex<BrokerError?>(nil)
        let published = await publish(for: delivery, metadata: metadata()) { [reply] broker in
            do {
                try await broker.publish(reply, to: replyTo, mandatory: true)
            } catch let error as BrokerError where error.code == .unroutable {
                var fields = metadata()
                fields["reply_to"] = .string(LogText.sanitized(replyTo))
                logger.warning("result dropped: no queue named by its reply_to", metadata: fields)
            } catch let error as BrokerError where error.code == .messageTooLarge {
                // Sending it again would be refused again: not a failed
                // publish to requeue for, but the task's failure.
                refused.withLock { $0 = error }
            }
        }
        if let error = refused.withLock({ $0 }) {
            return .tooLarge(ResultTooLargeError(size: size, limit: .broker(error.maxMessageBytes), brokerText: error.replyText))
        }
        return published ? .published : .requeued
    }

    /// Publishes a result that must not stop the delivery from being
    /// settled (an error result): one too large to send is dropped with a
    /// log line. True when there is nothing more to publish, false when
    /// the publish failed (the delivery was then requeued).
    func publishReply(
        _ result: TaskResult, failure: TaskFailure? = nil, for delivery: Delivery,
        metadata: @autoclosure () -> Logger.Metadata
    ) async -> Bool {
        let fields = metadata()
        switch await publishResult(result, failure: failure, for: delivery, metadata: { fields }) {
        case .published: return true
        case .requeued: return false
        case .tooLarge(let error):
            var fields = fields
            fields["error"] = .string(error.description)
            configuration.logger.error("result dropped: too large to send even as an error", metadata: fields)
            return true
        }
    }

    /// A result too large to send: an `error` result with `error` goes to
    /// `reply_to` instead, the delivery is dead-lettered with it and
    /// acknowledged, so the task does not run again for ever. Returns the
    /// outcome as settled (``TaskOutcome/failed(_:_:)``), for the
    /// middleware's log line, metrics and recorded events.
    func settleOversizeResult(
        _ outcome: TaskOutcome, _ error: ResultTooLargeError, for delivery: Delivery,
        metadata: (String) -> Logger.Metadata,
        beforeAck: (TaskOutcome) async -> Bool = { _ in true }
    ) async -> (outcome: TaskOutcome, settled: Bool) {
        let failure = TaskFailure(error)
        var result = outcome.result
        result.status = .error
        result.returning = nil
        result.traceback = failure.traceback
        let failed = TaskOutcome.failed(result, failure)
        guard await publishReply(result, failure: failure, for: delivery, metadata: metadata("error")),
              await deadLetter(delivery, failure: failure, uuid: result.uuid, attempts: result.retry + 1, metadata: metadata("error")),
              await beforeAck(failed),
              await settle(delivery, metadata: metadata("error"), { try await $0.acknowledge(delivery) })
        else { return (failed, false) }
        return (failed, true)
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
        workflowID: String? = nil,
        metadata: @autoclosure () -> Logger.Metadata
    ) async -> Bool {
        let now = Date().timeIntervalSince1970
        var copy = failureCopy(of: delivery, failure: failure, uuid: uuid, now: now)
        copy.properties.headers[MessageHeaders.originQueue] = .string(delivery.queue)
        // Which workflow a dead-lettered step belongs to (its body says it
        // too); replaying the dead letter resumes the workflow.
        if let workflowID { copy.properties.headers[MessageHeaders.workflow] = .string(workflowID) }
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
        if isAcknowledgedOnStart(delivery) {
            // The broker forgot the message when the task started: there
            // is nothing to requeue (at most once).
            var fields = metadata()
            fields["reason"] = .string(reason)
            configuration.logger.error("not requeued: the delivery was acknowledged when its task started (at most once)", metadata: fields)
            return
        }
        if await settle(delivery, metadata: metadata(), { try await $0.reject(delivery, requeue: true) }) {
            var fields = metadata()
            fields["reason"] = .string(reason)
            configuration.logger.warning("delivery requeued", metadata: fields)
        }
    }

    /// Runs one broker step of settling a delivery; on failure logs it and
    /// returns false. A delivery of a lost connection or closed channel
    /// cannot be settled any more; the broker has requeued it by itself.
    /// A delivery acknowledged when its task started
    /// (``TaskAcknowledgement/onStart``) is settled already: nothing is
    /// sent (a second ack of its tag would close the channel).
    func settle(
        _ delivery: Delivery,
        metadata: @autoclosure () -> Logger.Metadata,
        _ step: @escaping @Sendable (any Broker) async throws -> Void
    ) async -> Bool {
        if isAcknowledgedOnStart(delivery) { return true }
        do {
            try await shielded(step)
            return true
        } catch let error as BrokerError where error.code == .staleDelivery {
            // Closed for the broker's consumer_timeout: learn its value.
            noteBrokerClose(error)
            var fields = metadata()
            fields["error"] = .string(LogText.sanitized(String(describing: error)))
            configuration.logger.warning("delivery belongs to a lost connection or a closed channel: the broker has it back (or it went with its deleted queue); nothing settled", metadata: fields)
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

extension Worker {
    /// Settles a task that has nothing to send but its result: publishes
    /// `reply` and returns at once; the broker acknowledges the delivery
    /// when it confirms the reply (RabbitMQ: on the publishing connection's
    /// thread), so the task's concurrency slot is not held for the
    /// confirm's round trip. The ack still never goes before the confirm.
    ///
    /// A publish that fails is settled the slow way, in a task of its own:
    /// published again (``publishResult(_:failure:for:metadata:)``: a
    /// missing reply queue is logged and the delivery acked, a failure
    /// requeues it, a broker refusal as too large fails the task as
    /// ``ResultTooLargeError``). A session ends only once every one of
    /// these is settled (``settlementsInFlight``).
    func publishResultThenAcknowledge(
        _ reply: Message, to replyTo: String, outcome: TaskOutcome, for delivery: Delivery,
        metadata: @escaping @Sendable () -> Logger.Metadata
    ) async {
        let inFlight = settlementsInFlight
        inFlight.enter()
        await broker.publish(reply, to: replyTo, mandatory: true, thenAcknowledge: delivery) { [self] settled in
            switch settled {
            case .acknowledged:
                inFlight.leave()
            case .acknowledgementFailed(let error):
                // The channel or connection went between the task's end
                // and the confirm: the broker has the delivery back.
                noteBrokerClose(error)
                var fields = metadata()
                fields["error"] = .string(LogText.sanitized(String(describing: error)))
                configuration.logger.warning(
                    "result sent, but its delivery's channel or connection closed before the ack: the broker redelivers it",
                    metadata: fields)
                inFlight.leave()
            case .publishFailed:
                Task {
                    await self.settleAfterFailedResultPublish(outcome, for: delivery, metadata: metadata)
                    inFlight.leave()
                }
            }
        }
    }

    /// The slow way, after the fast one's publish failed.
    private func settleAfterFailedResultPublish(
        _ outcome: TaskOutcome, for delivery: Delivery, metadata: @escaping @Sendable () -> Logger.Metadata
    ) async {
        guard broker.canSettle(delivery) else {
            // Its connection or channel is gone: the redelivery publishes.
            return
        }
        switch await publishResult(outcome.result, for: delivery, metadata: metadata) {
        case .requeued:
            return
        case .tooLarge(let error):
            _ = await settleOversizeResult(outcome, error, for: delivery, metadata: { _ in metadata() })
        case .published:
            _ = await settle(delivery, metadata: metadata()) { try await $0.acknowledge(delivery) }
        }
    }
}
