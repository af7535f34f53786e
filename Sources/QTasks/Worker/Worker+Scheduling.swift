import Foundation
import Logging

/// Tasks that must not run yet (a Celery `eta` or `countdown`, a Dramatiq
/// `options.eta`, a Taskiq `labels.delay`): held by the broker, never by
/// the worker.
///
/// A Celery worker keeps such a message unacknowledged in its memory until
/// its time (celery/celery#6760: prefetch fills up with far-future tasks,
/// and a restart hands them all back at once). This worker instead
/// publishes a copy with ``MessageHeaders/notBefore`` to the per-delay
/// queues its retries use (``DelayedPublishing``, the same queue after
/// the delay), and acknowledges the delivery once the broker confirmed the
/// copy. The longest delay queue holds 30 days: a later `eta` takes several
/// such hops, each one deferring the copy again; so does a delay the broker
/// would round up, so that the task runs at most 50 ms early and never a
/// delay step late.
extension Worker {
    /// Defers `delivery` when its task must not run yet. True when it was
    /// deferred (copy confirmed and delivery acknowledged) or requeued
    /// because the publish failed; false when it is due (run it now), or
    /// the broker cannot delay messages (the runner then refuses a task
    /// that is not due rather than run it early).
    /// How much shorter than the wait a deferral asks for (see
    /// ``deferIfNotDue(_:)``).
    static var roundingMargin: Double { 1.25 }

    func deferIfNotDue(_ delivery: Delivery) async -> Bool {
        guard delivery.discardedBodySize == nil else { return false }
        let now = Date().timeIntervalSince1970
        // The cast to DelayedPublishing (a conformance lookup) only for a
        // message that is not due: this runs for every delivery.
        guard let notBefore = InboundTask.notBefore(of: delivery.message, now: now), notBefore > now + 0.05,
              let delaying = broker as? any DelayedPublishing
        else {
            return false
        }
        var copy = delivery.message
        copy.properties.headers[MessageHeaders.notBefore] = .double(notBefore)
        for key in MessageHeaders.brokerDeathHeaders { copy.properties.headers[key] = nil }
        // Celery sets `expiration` with `expires`; the worker checks
        // `expires` itself, and a TTL would cut the wait short.
        copy.properties.expiration = nil
        // A message of Dramatiq's delay queue `<queue>.DQ` becomes due in
        // `<queue>`, as Dramatiq's own worker moves it there.
        let queue = DramatiqProtocol.canonicalQueue(delivery.queue)
        // A broker may round a delay (RabbitMQBroker: to the nearest of
        // its steps, up to about 22 % longer). Asking for a fifth less
        // means the copy never comes back late: it comes back at or
        // before its time and, if still early, is deferred again for the
        // rest (a few hops, each covering most of what is left).
        let delay = Seconds.duration((notBefore - now) / Self.roundingMargin)
        let metadata: Logger.Metadata = [
            "queue": .string(LogText.sanitized(delivery.queue)),
            "message_id": .string(LogText.sanitized(delivery.message.properties.messageID ?? "")),
            "not_before": .string(ISOTime.text(notBefore)),
        ]
        let published = await publish(for: delivery, metadata: metadata, redeclaring: queue) { [copy] _ in
            try await delaying.publish(copy, to: queue, after: delay)
        }
        guard published else { return true }
        if await settle(delivery, metadata: metadata, { try await $0.acknowledge(delivery) }) {
            configuration.logger.debug("task deferred: held by the broker until it is due", metadata: metadata)
        }
        return true
    }
}
