import ArgumentParser
import Foundation
import QTasksRabbitMQ

/// How the task queues are declared: `--queue-type` and `--delivery-limit`,
/// shared by every command that declares a task queue (the worker, `qtasks
/// send`, `qtasks-scheduler`), so that whichever declares a queue first
/// declares it the way the others expect. RabbitMQ refuses (406) a second
/// declaration with other arguments; the first one wins. `--queue-type
/// quorum` is the only argument among them (`x-queue-type`); the delivery
/// limit goes into the queue's policy (`TaskQueuePolicy`).
public struct QueueTypeOptions: ParsableArguments {
    @Option(
        help: ArgumentHelp(
            "Queue type of the task queues: classic or quorum (replicated on a cluster; counts deliveries, see --delivery-limit). Default: $QTASKS_QUEUE_TYPE, else classic. Producers and workers must agree.",
            valueName: "type"))
    public var queueType: String?

    @Option(help: "Quorum queues: dead-letter a message after this many unsettled deliveries (0: no limit). Set by the queue's policy (qtasks queues policy apply), not by its declaration.")
    public var deliveryLimit: Int = 5

    public init() {}

    /// `--queue-type`, else `QTASKS_QUEUE_TYPE` (unless empty), else
    /// classic; in lower case (`Quorum` is `quorum`).
    public var resolvedQueueType: String {
        let environment = ProcessInfo.processInfo.environment["QTASKS_QUEUE_TYPE"].flatMap { $0.isEmpty ? nil : $0 }
        return (queueType ?? environment ?? "classic").lowercased()
    }

    public func validate() throws {
        guard QueueType(name: resolvedQueueType) != nil else {
            let source = queueType == nil ? "QTASKS_QUEUE_TYPE" : "--queue-type"
            throw ValidationError("\(source) must be classic or quorum, not '\(resolvedQueueType)'")
        }
        // RabbitMQ reads a delivery limit (the policy's delivery-limit, as
        // x-delivery-limit) as a 32-bit signed integer.
        guard (0...Int(Int32.max)).contains(deliveryLimit) else {
            throw ValidationError("--delivery-limit must be 0...\(Int32.max) (0: no limit)")
        }
    }

    /// Refuses `--max-priority` with quorum queues up front: RabbitMQ
    /// refuses `x-max-priority` on them (406), and the queue would never be
    /// declared.
    /// - Throws: `ValidationError` naming both options.
    public func validate(maxPriority: Int?) throws {
        if maxPriority != nil, resolvedQueueType == QueueType.quorum.name {
            throw ValidationError(
                "--max-priority needs classic queues: RabbitMQ's quorum queues refuse x-max-priority (queue type from \(queueType == nil ? "QTASKS_QUEUE_TYPE" : "--queue-type"))")
        }
    }

    public func apply(to configuration: inout RabbitMQBrokerConfiguration) {
        configuration.queueType = QueueType(name: resolvedQueueType) ?? .classic
        configuration.deliveryLimit = deliveryLimit > 0 ? deliveryLimit : nil
    }
}
