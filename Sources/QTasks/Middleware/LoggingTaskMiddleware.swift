import Logging

/// Logs one line per settled task: `task succeeded` (info), `task failed,
/// will be retried` (warning), `task failed, dead-lettered` (error), `bad
/// task message dead-lettered: …` (warning), `task cancelled itself`
/// (notice), with `uuid`, `task`, `queue`, `attempt`, `duration_ms`,
/// `status`, and `error`, `delay_s` or `reason` where they apply. What the
/// producer wrote is escaped, so that it cannot forge log lines. Installed
/// by default (``WorkerConfiguration/standardMiddleware``).
public struct LoggingTaskMiddleware: TaskMiddleware {
    private let logger: Logger

    /// - Parameter logger: where the lines go (the worker's logger).
    public init(logger: Logger) {
        self.logger = logger
    }

    public func process(_ delivery: Delivery, next: (Delivery) async -> TaskReport) async -> TaskReport {
        let report = await next(delivery)
        guard report.isSettled else { return report }
        let result = report.result
        var fields = Self.metadata(result, queue: delivery.queue, status: report.status, elapsed: report.duration)
        switch report.outcome {
        case .completed:
            logger.info("task succeeded", metadata: fields)
        case .cancelledByTask:
            fields["reason"] = .string(result.traceback ?? "")
            logger.notice("task cancelled itself", metadata: fields)
        case .retry(_, let failure, _):
            fields["error"] = .string(LogText.sanitized(failure.traceback))
            let delay = report.retryDelay.map(Seconds.double) ?? 0
            fields["delay_s"] = .stringConvertible((delay * 1000).rounded() / 1000)
            logger.warning("task failed, will be retried", metadata: fields)
        case .rejected(_, let failure):
            fields["error"] = .string(LogText.sanitized(failure.traceback))
            logger.warning("bad task message dead-lettered: \(LogText.sanitized(failure.message))", metadata: fields)
        case .failed(_, let failure):
            fields["error"] = .string(LogText.sanitized(failure.traceback))
            logger.error("task failed, dead-lettered", metadata: fields)
        case .cancelled:
            break
        }
        return report
    }

    /// The fields every line about a task carries.
    static func metadata(_ result: TaskResult, queue: String, status: String, elapsed: Duration) -> Logger.Metadata {
        let milliseconds = Double(elapsed.components.seconds) * 1000 + Double(elapsed.components.attoseconds) / 1e15
        return [
            // The producer's words: escaped so that they cannot forge
            // or garble log lines.
            "uuid": .string(LogText.sanitized(result.uuid)),
            "task": .string(LogText.sanitized(result.taskName)),
            "queue": .string(queue),
            "attempt": .stringConvertible(result.retry + 1),
            "duration_ms": .stringConvertible((milliseconds * 1000).rounded() / 1000),
            "status": .string(status),
        ]
    }
}
