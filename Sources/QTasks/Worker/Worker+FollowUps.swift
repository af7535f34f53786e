import Foundation
import Logging

/// What the worker publishes after a task and before its ack, besides the
/// result: the tasks that follow it (today: a Celery chain's next step,
/// callbacks, errbacks, and the failure of the chain steps that will not
/// run, ``CeleryFollowUps``).
///
/// At least once, like everything published for a delivery: each
/// follow-up is confirmed by the broker before the delivery is
/// acknowledged, and a failed publish requeues the delivery, which then
/// publishes its follow-ups again under the same task ids (the signatures'
/// own, or ids derived from the parent's), so a duplicate is recognisable.
extension Worker {
    /// Publishes what follows `delivery`'s task, given how it ended. True
    /// when everything was published (or there was nothing to publish);
    /// false when a publish failed and the delivery was requeued.
    func publishFollowUps(for delivery: Delivery, outcome: TaskOutcome) async -> Bool {
        let followUps = Self.followUps(for: delivery, outcome: outcome)
        guard !followUps.isEmpty else { return true }
        let logger = configuration.logger
        var fields: Logger.Metadata = [
            "queue": .string(LogText.sanitized(delivery.queue)),
            "uuid": .string(LogText.sanitized(outcome.result.uuid)),
            "task": .string(LogText.sanitized(outcome.result.taskName)),
        ]
        for followUp in followUps {
            switch followUp {
            case .task(let message, let queue):
                let target = queue ?? delivery.queue
                fields["follow_up_queue"] = .string(LogText.sanitized(target))
                fields["follow_up_id"] = .string(LogText.sanitized(message.properties.correlationID ?? ""))
                // Mandatory: a queue that does not exist is declared (as
                // Celery's producer would) and the publish tried again.
                guard await publish(for: delivery, metadata: fields, redeclaring: target, { broker in
                    try await broker.publish(message, to: target, mandatory: true)
                }) else { return false }
            case .result(let message, let replyTo):
                let published = await publish(for: delivery, metadata: fields) { [fields] broker in
                    do {
                        try await broker.publish(message, to: replyTo, mandatory: true)
                    } catch let error as BrokerError where error.code == .unroutable {
                        // The client is gone: nobody waits for this result.
                        var fields = fields
                        fields["reply_to"] = .string(LogText.sanitized(replyTo))
                        logger.warning("chain step's failure dropped: no queue named by its reply_to", metadata: fields)
                    }
                }
                guard published else { return false }
            }
        }
        logger.debug("follow-up tasks published", metadata: fields.merging(["count": .stringConvertible(followUps.count)]) { $1 })
        return true
    }

    /// The follow-ups of a delivery: none but for a Celery message with a
    /// canvas. After a success the callbacks and the chain's next step;
    /// after a failure the chain's failure and the errbacks; after a
    /// refusal (bad input) the chain's failure only, as a Celery worker
    /// calls no errback for a message it cannot run; nothing after a
    /// retry (the last attempt decides), a cancellation or an expiry.
    static func followUps(for delivery: Delivery, outcome: TaskOutcome) -> [CeleryFollowUps.FollowUp] {
        let properties = delivery.message.properties
        guard WireFormat(detecting: properties) == .celery else { return [] }
        switch outcome {
        case .completed, .failed, .rejected: break
        case .retry, .cancelled, .cancelledByTask: return []
        }
        // Read again here rather than carried from the runner: only Celery
        // messages pay for it, and the hook needs nothing but the delivery.
        guard let canvas = try? CeleryProtocol.read(body: delivery.message.body, properties: properties).canvas,
              !canvas.isEmpty
        else { return [] }
        let taskID = outcome.result.uuid
        switch outcome {
        case .completed(let result):
            return CeleryFollowUps.afterSuccess(canvas, taskID: taskID, returning: result.returning ?? .null)
        case .failed(_, let failure):
            return CeleryFollowUps.afterFailure(canvas, taskID: taskID, failure: failure, errbacks: true)
        case .rejected(_, let failure):
            return CeleryFollowUps.afterFailure(canvas, taskID: taskID, failure: failure, errbacks: false)
        case .retry, .cancelled, .cancelledByTask:
            return []
        }
    }
}
