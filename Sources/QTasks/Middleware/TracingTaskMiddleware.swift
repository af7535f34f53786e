import Tracing

/// Runs each delivery in a span `run <task name>` of kind `consumer`, the
/// child of the trace context in its headers (W3C `traceparent` from
/// ``TaskClient`` or any producer that writes it), with OpenTelemetry's
/// messaging attributes (docs/operations.md, "Tracing").
///
/// The span's `ServiceContext` is current while the delivery is processed,
/// so the handler's spans are its children, the outcome's log line
/// carries its ids, and the worker injects it into the headers of the
/// result, retry and dead-letter messages. Installed by default as the
/// outermost middleware (``WorkerConfiguration/standardMiddleware``).
public struct TracingTaskMiddleware: TaskMiddleware {
    private let tracer: (any Tracer)?

    /// - Parameter tracer: nil (the default) means the tracer the process
    ///   bootstrapped (`InstrumentationSystem.tracer`), looked up per
    ///   delivery.
    public init(tracer: (any Tracer)? = nil) {
        self.tracer = tracer
    }

    public func process(_ delivery: Delivery, next: (Delivery) async -> TaskReport) async -> TaskReport {
        let tracer: any Tracer
        if let own = self.tracer {
            tracer = own
        } else {
            // No instrument at all (bootstrapped or task-local), the usual
            // case, told by a concrete type check: looking for a tracer
            // among the instruments casts to protocols, 2 % of a no-op
            // task's CPU.
            if InstrumentationSystem.instrument is NoOpInstrument { return await next(delivery) }
            tracer = InstrumentationSystem.tracer
        }
        // No tracer bootstrapped: no span to start, end or hand down (its
        // context would be empty), and no task-locals to bind for it.
        if tracer is NoOpTracer { return await next(delivery) }
        let span = Self.startSpan(for: delivery, tracer: tracer)
        defer { span.end() }
        return await ServiceContext.withValue(span.context) {
            // The runner names the span once it has read the task's name,
            // and records the error that failed it.
            await WorkerSpan.$current.withValue(span) {
                let report = await next(delivery)
                Self.annotate(span, with: report.outcome)
                return report
            }
        }
    }

    static func startSpan(for delivery: Delivery, tracer: any Tracer) -> any Span {
        let properties = delivery.message.properties
        var context = ServiceContext.topLevel
        tracer.extract(properties.headers, into: &context, using: HeaderExtractor())
        let span = tracer.startSpan("run", context: context, ofKind: .consumer)
        // A no-op span (no tracer bootstrapped) would still build the
        // attribute dictionary: a tenth of a send's CPU.
        if span.isRecording {
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
        }
        return span
    }

    static func annotate(_ span: any Span, with outcome: TaskOutcome) {
        let result = outcome.result
        let status: String
        switch outcome {
        case .completed: status = "success"
        case .retry: status = "retry"
        case .failed, .rejected: status = "error"
        case .cancelled, .cancelledByTask: status = "cancel"
        }
        // A no-op span (no tracer bootstrapped) would still build the
        // attribute dictionary: a tenth of a send's CPU.
        if span.isRecording {
            span.updateAttributes { attributes in
                attributes[TracingAttributes.taskStatus] = status
                attributes[TracingAttributes.messageID] = result.uuid
            }
        }
        if let failure = outcome.failure {
            span.setStatus(SpanStatus(code: .error, message: failure.traceback))
        }
    }
}

/// The span of the delivery being processed, for the ``TaskRunner`` to
/// name and to record errors on: a span has no place in `ServiceContext`.
enum WorkerSpan {
    @TaskLocal static var current: (any Span)?
}
