import Tracing

extension Worker {
    /// Writes the current trace context (the delivery's span, when the
    /// tracing middleware runs) into a message the worker publishes.
    func injectTraceContext(into message: inout Message) {
        guard let context = ServiceContext.current else { return }
        configuration.effectiveTracer.inject(context, into: &message.properties.headers, using: HeaderInjector())
    }
}
