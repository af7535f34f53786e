import Tracing

/// The span of one delivery and the trace context of what the worker
/// publishes for it.
extension Worker {
    /// Starts the span of a delivery as the child of the context in its
    /// headers (a root span when they carry none), named `run` until the
    /// executor has read the task name.
    ///
    /// The parent is the message's context only, never the worker's own:
    /// each task belongs to the trace of whoever sent it.
    func startSpan(for delivery: Delivery) -> any Span {
        let tracer = configuration.effectiveTracer
        let properties = delivery.message.properties
        var context = ServiceContext.topLevel
        tracer.extract(properties.headers, into: &context, using: HeaderExtractor())
        let span = tracer.startSpan("run", context: context, ofKind: .consumer)
        span.updateAttributes { attributes in
            attributes[TracingAttributes.system] = TracingAttributes.rabbitMQ
            attributes[TracingAttributes.destinationName] = delivery.queue
            attributes[TracingAttributes.operationType] = "process"
            attributes[TracingAttributes.operationName] = "process"
            attributes[TracingAttributes.taskAttempt] = TaskContext.attempt(from: properties.headers)
            if let messageID = properties.messageID, !messageID.isEmpty {
                attributes[TracingAttributes.messageID] = messageID
            }
            if let correlationID = properties.correlationID, !correlationID.isEmpty {
                attributes[TracingAttributes.conversationID] = correlationID
            }
        }
        return span
    }

    /// Records how the task went: `qtasks.task.status` (`success`,
    /// `error`, `retry` or `cancel`, the log line's `status`), the uuid as
    /// `messaging.message.id`, and for a failure, retried or not, the span
    /// status `error` with the result's traceback. The executor has
    /// recorded the error itself.
    func annotate(_ span: any Span, with outcome: TaskOutcome) {
        let result = outcome.result
        let status: String
        switch outcome {
        case .completed: status = "success"
        case .retry: status = "retry"
        case .failed, .rejected: status = "error"
        case .cancelled, .cancelledByTask: status = "cancel"
        }
        span.updateAttributes { attributes in
            attributes[TracingAttributes.taskStatus] = status
            attributes[TracingAttributes.messageID] = result.uuid
        }
        if let failure = outcome.failure {
            span.setStatus(SpanStatus(code: .error, message: failure.traceback))
        }
    }

    /// Puts the current span's context (the delivery's, while settling)
    /// into a message published for the delivery, replacing the context
    /// the message came with.
    func injectTraceContext(into message: inout Message) {
        guard let context = ServiceContext.current else { return }
        configuration.effectiveTracer.inject(context, into: &message.properties.headers, using: HeaderInjector())
    }
}
