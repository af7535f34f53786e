import Foundation
import Logging
import Synchronization

/// Workflow steps (docs/workflows.md): after a step's end and before its
/// delivery is acknowledged, the worker makes the step's store calls and
/// publishes what follows it, with confirms.
extension Worker {
    /// What became of a workflow step's follow-ups.
    enum WorkflowContinuation {
        /// Done (or nothing to do): settle the delivery.
        case proceed
        /// A store or broker call failed; the delivery was requeued.
        case requeued
        /// The workflow cannot go on (``WorkflowError``: no workflow store,
        /// a join gone): it ended with this failure, and the step's
        /// delivery was dead-lettered with it. Settle the delivery, and
        /// report the step as failed, not succeeded.
        case refused(TaskFailure)
    }

    /// Continues the workflow a step belongs to. True when the delivery can
    /// be settled now; false when it was requeued (a store or broker call
    /// failed: the same calls are made again on the next delivery).
    func continueWorkflow(_ execution: TaskRunner.Execution, for delivery: Delivery, metadata: @autoclosure () -> Logger.Metadata) async -> Bool {
        if case .requeued = await continueWorkflowStep(execution, for: delivery, metadata: metadata()) { return false }
        return true
    }

    /// ``continueWorkflow(_:for:metadata:)``, saying whether the workflow
    /// was refused.
    func continueWorkflowStep(
        _ execution: TaskRunner.Execution, for delivery: Delivery, metadata: @autoclosure () -> Logger.Metadata
    ) async -> WorkflowContinuation {
        guard let context = execution.workflow, !execution.halted else { return .proceed }
        let store = configuration.workflowStore
        // A store call that fails (Redis frozen past its timeout) is tried
        // again here before the delivery is requeued: every call is
        // idempotent, and a requeue would run the step's task again when
        // its end was not recorded yet.
        var failures = 0
        while true {
            var plan = WorkflowPlan(context: context, store: store, queue: delivery.queue)
            do {
                switch execution.outcome {
                case .completed(let result):
                    if result.taskName == WorkflowContext.startTaskName, let root = context.start {
                        try await plan.start(root)
                    } else {
                        let value = result.returning ?? .null
                        // Before its follow-ups: a second delivery of this
                        // step then does them again without running it again.
                        if !execution.recorded { try await store?.finishStep(result.uuid, returning: value) }
                        try await plan.stepSucceeded(value)
                    }
                case .failed(let result, let failure), .rejected(let result, let failure):
                    let error = "\(failure.errorType): \(failure.message) (step \(result.taskName.isEmpty ? "?" : result.taskName) \(result.uuid))"
                    try await plan.stepFailed(status: .error, error: error)
                case .cancelledByTask(let result):
                    try await plan.stepFailed(status: .cancel, error: "cancelled by the task (step \(result.taskName) \(result.uuid))")
                case .retry, .cancelled:
                    return .proceed
                }
            } catch let error as WorkflowError {
                return await refuseWorkflow(error.message, context: context, execution: execution, for: delivery, metadata: metadata())
            } catch let error as ResultStoreError where error.code == .corrupt {
                // The join is gone (expired, the store emptied) or
                // unreadable: no retry brings it back.
                return await refuseWorkflow(error.message, context: context, execution: execution, for: delivery, metadata: metadata())
            } catch {
                failures += 1
                if failures < Self.workflowStoreAttempts, !Task.isCancelled {
                    var fields = metadata()
                    fields["error"] = .string(LogText.sanitized(String(describing: error)))
                    fields["attempt"] = .stringConvertible(failures)
                    configuration.logger.warning("workflow store call failed; trying again", metadata: fields)
                    try? await Task.sleep(for: .milliseconds(500 * failures))
                    continue
                }
                await requeueAfterFailedPublish(delivery, error: error, metadata: metadata())
                return .requeued
            }
            return await publishWorkflowMessages(plan.publications, for: delivery, metadata: metadata()) ? .proceed : .requeued
        }
    }

    /// The outcome a refused workflow step is reported with: a success
    /// (dead-lettered with the refusal) becomes `failed` with `failure`
    /// (status `error`, its traceback); any other outcome stays as it was
    /// settled (a failure was dead-lettered with its own error already).
    static func refusedOutcome(_ outcome: TaskOutcome, _ failure: TaskFailure) -> TaskOutcome {
        switch outcome {
        case .completed(var result):
            result.status = .error
            result.returning = nil
            result.traceback = failure.traceback
            return .failed(result, failure)
        default:
            return outcome
        }
    }

    /// How many times a workflow step's store calls are made before its
    /// delivery is requeued.
    static let workflowStoreAttempts = 3

    /// A workflow that cannot go on: it ends with `message` (its sender
    /// gets the error result), and the step's delivery is dead-lettered
    /// with it. `.refused` when the delivery can be acknowledged.
    private func refuseWorkflow(
        _ message: String, context: WorkflowContext, execution: TaskRunner.Execution, for delivery: Delivery,
        metadata: @autoclosure () -> Logger.Metadata
    ) async -> WorkflowContinuation {
        let store = configuration.workflowStore
        do {
            var fields = metadata()
            fields["error"] = .string(message)
            configuration.logger.error("workflow refused", metadata: fields)
            var failing = WorkflowPlan(context: context, store: store, queue: delivery.queue)
            try? await failing.fail(message)
            guard await publishWorkflowMessages(failing.publications, for: delivery, metadata: metadata()) else { return .requeued }
            let failure = TaskFailure(errorType: "WorkflowError", message: message)
            // A failed step was dead-lettered already; a step that ran
            // (its result could not be carried on) is dead-lettered now.
            if case .completed = execution.outcome {
                guard await deadLetter(
                    delivery, failure: failure, uuid: execution.outcome.result.uuid, attempts: execution.outcome.result.retry + 1,
                    workflowID: context.id, metadata: metadata())
                else { return .requeued }
            }
            return .refused(failure)
        }
    }

    /// Publishes a step's follow-ups with confirms, declaring their queues
    /// first; on failure requeues the delivery and returns false.
    func publishWorkflowMessages(_ publications: [Publication], for delivery: Delivery, metadata: @autoclosure () -> Logger.Metadata) async -> Bool {
        guard !publications.isEmpty else { return true }
        let queues = Set(publications.filter(\.mandatory).map(\.queue))
        let undeclared = workflowQueues.withLock { queues.subtracting($0) }.sorted()
        let published = await publish(for: delivery, metadata: metadata()) { broker in
            for queue in undeclared {
                try await broker.declareTaskQueue(queue)
            }
            let outcomes = try await broker.publish(batch: publications)
            for outcome in outcomes { try outcome.get() }
        }
        if published { workflowQueues.withLock { $0.formUnion(undeclared) } }
        return published
    }

    /// A delivery of a workflow step that another delivery of the same
    /// step is running: published again unchanged after `delay` (held by
    /// the broker), then acknowledged.
    func deferBusyStep(_ delivery: Delivery, delay: Duration, metadata: @autoclosure () -> Logger.Metadata) async -> Bool {
        let queue = delivery.queue
        let message = delivery.message
        let published = await publish(for: delivery, metadata: metadata(), redeclaring: queue) { broker in
            if let delaying = broker as? any DelayedPublishing {
                _ = try await delaying.publish(message, to: queue, after: delay)
            } else {
                try await broker.publish(message, to: queue, mandatory: true)
            }
        }
        guard published else { return false }
        return await settle(delivery, metadata: metadata(), { try await $0.acknowledge(delivery) })
    }
}
