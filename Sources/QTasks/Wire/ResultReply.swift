/// The result message a worker publishes for a delivery, in the format of
/// the message that asked for it.
enum ResultReply {
    /// The reply to publish to `request.replyTo`, or nil when none is
    /// wanted (no `reply_to`, or a Celery message with `ignore_result`).
    ///
    /// QTasks messages get a ``TaskResult`` body; Celery messages a
    /// ``CeleryResult`` body with `content_encoding` `utf-8`. Either way
    /// the `correlation_id` is the request's, else the task uuid, and the
    /// reply is persistent when the request was.
    static func message(for result: TaskResult, failure: TaskFailure?, request: MessageProperties) -> Message? {
        guard let replyTo = request.replyTo, !replyTo.isEmpty else { return nil }
        var properties = MessageProperties(
            contentType: "application/json",
            persistent: request.persistent,
            correlationID: request.correlationID ?? result.uuid)
        switch WireFormat(detecting: request) {
        case .qtasks, .dramatiq, .taskiq:
            return Message(body: result.jsonBytes(), properties: properties)
        case .celery:
            guard !CeleryProtocol.ignoresResult(request) else { return nil }
            properties.contentEncoding = "utf-8"
            return Message(body: CeleryResult(result, failure: failure).jsonBytes(), properties: properties)
        }
    }
}
