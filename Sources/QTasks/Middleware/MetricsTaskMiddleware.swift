import Metrics

/// Counts deliveries and times tasks with swift-metrics, under the names
/// of ``WorkerMetrics`` (docs/operations.md, "Metrics"): the in-flight
/// gauge while a delivery is processed, `received` for every delivery,
/// and once its outcome is settled the counter of that outcome and the
/// duration. Installed by default (``WorkerConfiguration/standardMiddleware``).
public struct MetricsTaskMiddleware: TaskMiddleware {
    private let metrics: WorkerMetrics

    /// - Parameters:
    ///   - app: its task names are the `task` label's values; any other
    ///     name is counted as `unknown`, so that producers cannot grow the
    ///     number of series.
    ///   - factory: where the metrics go; nil (the default) means the
    ///     process's (`MetricsSystem.factory`, as bootstrapped).
    public init(app: TaskApp, factory: (any MetricsFactory)? = nil) {
        self.metrics = WorkerMetrics(knownTasks: app.taskNames, factory: factory)
    }

    public func process(_ delivery: Delivery, next: (Delivery) async -> TaskReport) async -> TaskReport {
        // The factory once per task, not once per metric (a lock each);
        // without a metrics backend (swift-metrics' no-op factory) none of
        // the five metric objects is made: a few percent of a no-op task.
        let factory = metrics.factory ?? MetricsSystem.factory
        if factory is NOOPMetricsHandler { return await next(delivery) }
        let metrics = WorkerMetrics(self.metrics, factory: factory)
        metrics.taskStarted()
        defer { metrics.taskFinished() }
        let report = await next(delivery)
        let task = report.result.taskName
        let queue = delivery.queue
        metrics.count(WorkerMetrics.received, task: task, queue: queue)
        guard report.isSettled else { return report }
        switch report.outcome {
        case .completed: metrics.count(WorkerMetrics.succeeded, task: task, queue: queue)
        case .cancelledByTask: metrics.count(WorkerMetrics.cancelled, task: task, queue: queue)
        case .retry: metrics.count(WorkerMetrics.retried, task: task, queue: queue)
        case .failed, .rejected:
            metrics.count(WorkerMetrics.failed, task: task, queue: queue)
            metrics.count(WorkerMetrics.deadLettered, task: task, queue: queue)
        case .cancelled: return report
        }
        metrics.recordDuration(report.duration, task: task, queue: queue)
        return report
    }
}
