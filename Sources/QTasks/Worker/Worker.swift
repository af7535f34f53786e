import Foundation
import Logging
import ServiceLifecycle

/// Consumes task messages from a broker, runs their handlers, publishes
/// results to `reply_to`, and settles each delivery.
///
/// Settling follows the at-least-once contract: a delivery is acknowledged
/// only after its handler finished and its result (if it has a `reply_to`)
/// and, for a failure, its dead-letter copy were confirmed by the broker.
/// When a publish fails the delivery is left unacknowledged, so the broker
/// delivers it again after a reconnect.
///
/// - Success: result published, delivery acknowledged.
/// - Handler error or bad input (oversize, malformed JSON, unknown task,
///   wrong arguments): error result published, a copy of the original
///   message (same body and properties, plus `x-qtasks-error-type`,
///   `x-qtasks-error-message`, `x-qtasks-origin-queue`, `x-qtasks-failed-at`
///   (Unix seconds) and `x-qtasks-attempts` headers) published to
///   `<queue>.dlq`, then the delivery acknowledged.
/// - Cancelled (shutdown deadline): rejected with requeue, no result.
///
/// Graceful shutdown (service-lifecycle's, from a `ServiceGroup`, or
/// ``triggerGracefulShutdown()``) stops consuming; deliveries received but
/// not started are rejected with requeue; running tasks get
/// ``WorkerConfiguration/shutdownGracePeriod`` seconds to finish, then are
/// cancelled and requeued. ``run()`` then returns normally. Cancellation is
/// cooperative: a handler that never checks for it (or awaits nothing
/// cancellable) delays the return until it finishes. Worker-scoped
/// ``Dependency`` instances are torn down after the last task finished,
/// in reverse order of setup, before ``run()`` returns.
///
/// A worker runs once; make a new one to run again.
public final class Worker: Service, Sendable {
    /// The configuration the worker was made with.
    public let configuration: WorkerConfiguration
    private let broker: any Broker
    private let app: TaskApp
    private let shutdown = ShutdownSignal()

    /// - Parameters:
    ///   - broker: where tasks come from; the caller closes it after `run()`.
    ///   - app: the tasks; the worker takes a snapshot when `run()` starts.
    public init(broker: any Broker, app: TaskApp, configuration: WorkerConfiguration = WorkerConfiguration()) {
        self.broker = broker
        self.app = app
        self.configuration = configuration
    }

    /// Starts graceful shutdown as a `ServiceGroup` would: for a worker run
    /// outside one (tests, embedding). Safe to call at any time, repeatedly.
    public func triggerGracefulShutdown() {
        shutdown.fire()
    }

    /// Declares the queues, consumes until graceful shutdown, and returns
    /// once every received delivery is settled or requeued.
    ///
    /// - Throws: a ``BrokerError`` when declaring or consuming fails, or
    ///   when the delivery stream ends with an error (connection lost); the
    ///   unacknowledged deliveries then return to their queues through the
    ///   broker.
    public func run() async throws {
        try await withGracefulShutdownHandler {
            try await consume()
        } onGracefulShutdown: { [shutdown] in
            shutdown.fire()
        }
    }

    private enum ChildEvent: Sendable {
        case taskFinished
        case deadline
        case watcherStopped
    }

    private func consume() async throws {
        let logger = configuration.logger
        let executor = TaskExecutor(
            app: app,
            maxMessageBytes: configuration.maxMessageBytes,
            taskTimeLimit: configuration.taskTimeLimit,
            logger: logger
        )
        for queue in configuration.queues {
            try await broker.declareTaskQueue(queue)
        }
        let deliveries = try await broker.consume(queues: configuration.queues, prefetch: configuration.effectivePrefetch)
        let concurrency = configuration.effectiveConcurrency
        logger.info(
            "worker started",
            metadata: [
                "queues": .string(configuration.queues.joined(separator: ",")),
                "concurrency": .stringConvertible(concurrency),
                "prefetch": .stringConvertible(configuration.effectivePrefetch),
                "tasks": .string(app.taskNames.joined(separator: ",")),
            ]
        )

        let streamError: (any Error)? = await withTaskGroup(of: ChildEvent.self) { group in
            group.addTask { await self.watchForShutdown() }
            // Children started and not yet collected with next(): this is
            // what bounds concurrency, and what keeps the group from piling
            // up finished children.
            var running = 0
            // Received after shutdown began: requeued once the stream ends,
            // so the broker cannot hand them straight back to us.
            var held: [Delivery] = []
            var streamError: (any Error)?

            func collect(_ event: ChildEvent?) -> Bool {
                switch event {
                case .taskFinished?:
                    running -= 1
                    return false
                case .deadline?:
                    return true
                case .watcherStopped?, nil:
                    return false
                }
            }

            do {
                for try await delivery in deliveries {
                    while running >= concurrency {
                        if collect(await group.next()) { self.cancelStragglers(&group, running: running) }
                    }
                    if shutdown.isFired {
                        held.append(delivery)
                        continue
                    }
                    running += 1
                    group.addTask {
                        await self.process(delivery, executor)
                        return .taskFinished
                    }
                }
            } catch {
                streamError = error
                logger.error("delivery stream failed; cancelling running tasks", metadata: ["error": "\(error)"])
                group.cancelAll()
            }

            for delivery in held {
                await requeue(delivery, reason: "not started before shutdown")
            }
            while running > 0 {
                if collect(await group.next()) { self.cancelStragglers(&group, running: running) }
            }
            // Only the shutdown watcher is left.
            group.cancelAll()
            return streamError
        }
        // Every task has finished: now the worker-scoped dependencies go.
        await executor.tearDownWorkerDependencies()
        if let streamError { throw streamError }
        logger.info("worker stopped")
    }

    private func cancelStragglers(_ group: inout TaskGroup<ChildEvent>, running: Int) {
        configuration.logger.warning(
            "shutdown grace period over; cancelling running tasks, they will be requeued",
            metadata: ["running": .stringConvertible(running), "grace_period_s": .stringConvertible(configuration.shutdownGracePeriod)]
        )
        group.cancelAll()
    }

    /// Waits for graceful shutdown, stops consuming, then reports the end of
    /// the grace period.
    private func watchForShutdown() async -> ChildEvent {
        guard await shutdown.wait() else { return .watcherStopped }
        // Large values (or infinity) mean "wait for ever"; Duration cannot
        // hold them.
        let grace = min(max(configuration.shutdownGracePeriod, 0), 1e9)
        let deadline = ContinuousClock.now + .seconds(grace)
        configuration.logger.info("graceful shutdown: stop consuming", metadata: ["grace_period_s": .stringConvertible(grace)])
        await broker.stopConsuming()
        do {
            try await Task.sleep(until: deadline, clock: .continuous)
        } catch {
            return .watcherStopped
        }
        return .deadline
    }

    /// Runs one delivery and settles it; logs one line.
    private func process(_ delivery: Delivery, _ executor: TaskExecutor) async {
        let start = ContinuousClock.now
        let outcome = await executor.execute(delivery)
        let result = outcome.result
        func metadata(_ status: String) -> Logger.Metadata {
            let elapsed = ContinuousClock.now - start
            let milliseconds = Double(elapsed.components.seconds) * 1000 + Double(elapsed.components.attoseconds) / 1e15
            return [
                "uuid": .string(result.uuid),
                "task": .string(result.taskName),
                "queue": .string(delivery.queue),
                "duration_ms": .stringConvertible((milliseconds * 1000).rounded() / 1000),
                "status": .string(status),
            ]
        }
        let logger = configuration.logger

        switch outcome {
        case .cancelled:
            await requeue(delivery, reason: "cancelled at shutdown", metadata: metadata("cancel"))
        case .completed:
            guard await publishReply(result, for: delivery, metadata: metadata("success")),
                  await settle(delivery, metadata: metadata("success"), { try await $0.acknowledge(delivery) })
            else { return }
            logger.info("task succeeded", metadata: metadata("success"))
        case .failed(_, let failure), .rejected(_, let failure):
            let isBadInput: Bool
            if case .rejected = outcome { isBadInput = true } else { isBadInput = false }
            guard await publishReply(result, for: delivery, metadata: metadata("error")),
                  await deadLetter(delivery, failure: failure, attempts: result.retry + 1, metadata: metadata("error")),
                  await settle(delivery, metadata: metadata("error"), { try await $0.acknowledge(delivery) })
            else { return }
            var fields = metadata("error")
            fields["error"] = .string(failure.traceback)
            if isBadInput {
                logger.warning("bad task message dead-lettered: \(failure.message)", metadata: fields)
            } else {
                logger.error("task failed, dead-lettered", metadata: fields)
            }
        }
    }

    private func publishReply(_ result: TaskResult, for delivery: Delivery, metadata: @autoclosure () -> Logger.Metadata) async -> Bool {
        let properties = delivery.message.properties
        guard let replyTo = properties.replyTo, !replyTo.isEmpty else { return true }
        // Not persistent: the reply queue belongs to one client connection
        // and dies with it, so surviving a broker restart buys nothing.
        let reply = Message(
            body: result.jsonBytes(),
            properties: MessageProperties(
                contentType: "application/json",
                persistent: false,
                correlationID: properties.correlationID ?? result.uuid
            )
        )
        return await settle(delivery, metadata: metadata(), { try await $0.publish(reply, to: replyTo, mandatory: false) })
    }

    private func deadLetter(
        _ delivery: Delivery,
        failure: TaskFailure,
        attempts: Int,
        metadata: @autoclosure () -> Logger.Metadata
    ) async -> Bool {
        var copy = delivery.message
        copy.properties.headers["x-qtasks-error-type"] = .string(failure.errorType)
        copy.properties.headers["x-qtasks-error-message"] = .string(failure.message)
        copy.properties.headers["x-qtasks-origin-queue"] = .string(delivery.queue)
        copy.properties.headers["x-qtasks-failed-at"] = .double(Date().timeIntervalSince1970)
        copy.properties.headers["x-qtasks-attempts"] = .int(Int64(attempts))
        let queue = QueueNaming.deadLetterQueue(for: delivery.queue)
        // Mandatory: a missing dead-letter queue must not swallow the copy.
        return await settle(delivery, metadata: metadata(), { [copy] in try await $0.publish(copy, to: queue, mandatory: true) })
    }

    private func requeue(_ delivery: Delivery, reason: String, metadata: @autoclosure () -> Logger.Metadata = [:]) async {
        if await settle(delivery, metadata: metadata(), { try await $0.reject(delivery, requeue: true) }) {
            var fields = metadata()
            fields["reason"] = .string(reason)
            configuration.logger.warning("delivery requeued", metadata: fields)
        }
    }

    /// Runs one broker step of settling a delivery; on failure logs it and
    /// returns false, leaving the delivery unacknowledged for the broker to
    /// redeliver.
    ///
    /// A cancelled task (shutdown deadline) still has to settle its
    /// delivery, and a broker may refuse to start work in a cancelled task,
    /// so then the step runs in a task of its own, shielded from the
    /// cancellation. Only that rare path pays for the extra task.
    private func settle(
        _ delivery: Delivery,
        metadata: @autoclosure () -> Logger.Metadata,
        _ step: @escaping @Sendable (any Broker) async throws -> Void
    ) async -> Bool {
        do {
            if Task.isCancelled {
                let broker = self.broker
                try await Task { try await step(broker) }.value
            } else {
                try await step(broker)
            }
            return true
        } catch {
            var fields = metadata()
            fields["error"] = .string(String(describing: error))
            configuration.logger.error("broker operation failed; delivery left unacknowledged for redelivery", metadata: fields)
            return false
        }
    }
}
