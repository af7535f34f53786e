/// How a QTasks priority (lower runs first, default 0) maps onto the AMQP
/// priority property of a priority queue (higher delivered first, 0 to the
/// queue's `x-max-priority`).
///
/// `amqp = max(0, min(maxPriority, maxPriority - priority))`: QTasks
/// priority 0 (the default, and any negative value) is the highest AMQP
/// priority; `maxPriority` and anything above it the lowest, 0. With
/// `maxPriority` 9: QTasks 0 → 9, 1 → 8, 5 → 4, 9 and more → 0.
///
/// Applied by ``TaskClient`` (and the `qtasks send --priority` command) to
/// queues of a ``PriorityQueueing`` broker that are priority queues.
/// Celery clients set the AMQP property themselves, in AMQP's sense
/// (`priority=9` is the most urgent with `task_queue_max_priority = 9`).
/// A message without the property counts as AMQP priority 0 in a priority
/// queue: the lowest.
public struct PriorityMapping: Sendable, Hashable {
    /// The queue's `x-max-priority`, 1...255 (clamped).
    public let maxPriority: Int

    public init(maxPriority: Int) {
        self.maxPriority = min(max(maxPriority, 1), 255)
    }

    /// The AMQP priority property for a QTasks priority.
    public func amqpPriority(for priority: Int) -> UInt8 {
        let (difference, overflow) = maxPriority.subtractingReportingOverflow(priority)
        if overflow { return priority < 0 ? UInt8(maxPriority) : 0 }
        return UInt8(min(max(difference, 0), maxPriority))
    }

    /// The QTasks priority an AMQP priority stands for (the inverse, within
    /// 0...maxPriority): `maxPriority - min(amqp, maxPriority)`.
    public func qtasksPriority(forAMQP priority: UInt8) -> Int {
        maxPriority - min(Int(priority), maxPriority)
    }
}
