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
        // The fields go in as autoclosures: at a level the logger drops,
        // none of them is built (escaping the producer's text walks every
        // character, a tenth of a worker's CPU per task).
        switch report.outcome {
        case .completed:
            logger.info("task succeeded", metadata: Self.fields(report))
        case .cancelledByTask(let result):
            logger.notice("task cancelled itself", metadata: Self.fields(report, ["reason": .string(result.traceback ?? "")]))
        case .retry(_, let failure, _):
            logger.warning(
                "task failed, will be retried",
                metadata: Self.fields(report, [
                    "error": .string(LogText.sanitized(failure.traceback)),
                    "delay_s": .stringConvertible(Seconds.logValue(report.retryDelay ?? .zero)),
                ]))
        case .rejected(_, let failure):
            logger.warning(
                "bad task message dead-lettered: \(LogText.sanitized(failure.message))",
                metadata: Self.fields(report, ["error": .string(LogText.sanitized(failure.traceback))]))
        case .failed(_, let failure):
            logger.error(
                "task failed, dead-lettered", metadata: Self.fields(report, ["error": .string(LogText.sanitized(failure.traceback))]))
        case .cancelled:
            break
        }
        return report
    }

    /// The line's fields: those of every task line, and `extra`.
    private static func fields(_ report: TaskReport, _ extra: Logger.Metadata = [:]) -> Logger.Metadata {
        metadata(report.result, queue: report.delivery.queue, status: report.status, elapsed: report.duration)
            .merging(extra) { _, new in new }
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
