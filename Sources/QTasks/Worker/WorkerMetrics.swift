import Metrics

/// The worker's metrics, through swift-metrics: whatever backend the
/// process bootstrapped with `MetricsSystem.bootstrap` (none: no-ops).
///
/// Counters carry the dimensions `task` and `queue`. Task names come from
/// producers, so only the names registered on the app become labels;
/// any other name is counted as `task="unknown"` (label cardinality stays
/// bounded whatever is sent).
///
/// | name | type | dimensions |
/// | --- | --- | --- |
/// | `qtasks_tasks_received_total` | counter | task, queue |
/// | `qtasks_tasks_succeeded_total` | counter | task, queue |
/// | `qtasks_tasks_failed_total` | counter | task, queue |
/// | `qtasks_tasks_retried_total` | counter | task, queue |
/// | `qtasks_tasks_dead_lettered_total` | counter | task, queue |
/// | `qtasks_tasks_cancelled_total` | counter | task, queue |
/// | `qtasks_task_duration_seconds` | histogram (timer) | task, queue |
/// | `qtasks_tasks_in_flight` | gauge (meter) | none |
/// | `qtasks_reconnects_total` | counter | none |
public struct WorkerMetrics: Sendable {
    public static let received = "qtasks_tasks_received_total"
    public static let succeeded = "qtasks_tasks_succeeded_total"
    public static let failed = "qtasks_tasks_failed_total"
    public static let retried = "qtasks_tasks_retried_total"
    public static let deadLettered = "qtasks_tasks_dead_lettered_total"
    public static let cancelled = "qtasks_tasks_cancelled_total"
    public static let duration = "qtasks_task_duration_seconds"
    public static let inFlight = "qtasks_tasks_in_flight"
    public static let reconnects = "qtasks_reconnects_total"

    /// The label of every task name that is not registered.
    public static let unknownTask = "unknown"

    let knownTasks: Set<String>
    /// Where the metrics go; nil: the process's (`MetricsSystem.factory`).
    let factory: (any MetricsFactory)?

    init(knownTasks: some Sequence<String>, factory: (any MetricsFactory)? = nil) {
        self.knownTasks = Set(knownTasks)
        self.factory = factory
    }

    /// `metrics` sending to `factory`, resolved once (reading
    /// `MetricsSystem.factory` takes a lock).
    init(_ metrics: WorkerMetrics, factory: any MetricsFactory) {
        self.knownTasks = metrics.knownTasks
        self.factory = factory
    }

    /// The `task` label for a name from a message.
    func taskLabel(_ name: String) -> String {
        knownTasks.contains(name) ? name : Self.unknownTask
    }

    private func dimensions(_ task: String, _ queue: String) -> [(String, String)] {
        [("task", taskLabel(task)), ("queue", queue)]
    }

    func count(_ label: String, task: String, queue: String) {
        Counter(label: label, dimensions: dimensions(task, queue), factory: factory ?? MetricsSystem.factory).increment()
    }

    func recordDuration(_ duration: Duration, task: String, queue: String) {
        let (seconds, attoseconds) = duration.components
        let nanoseconds = seconds * 1_000_000_000 + attoseconds / 1_000_000_000
        Timer(label: Self.duration, dimensions: dimensions(task, queue), factory: factory ?? MetricsSystem.factory)
            .recordNanoseconds(nanoseconds)
    }

    func taskStarted() {
        Meter(label: Self.inFlight, factory: factory ?? MetricsSystem.factory).increment()
    }

    func taskFinished() {
        Meter(label: Self.inFlight, factory: factory ?? MetricsSystem.factory).decrement()
    }

    func reconnected() {
        Counter(label: Self.reconnects, factory: factory ?? MetricsSystem.factory).increment()
    }
}
