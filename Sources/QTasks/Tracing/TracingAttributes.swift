/// Span attribute names: OpenTelemetry's messaging semantic conventions
/// (https://opentelemetry.io/docs/specs/semconv/messaging/messaging-spans/
/// and the RabbitMQ page next to it), plus the `qtasks.` ones of this
/// package.
enum TracingAttributes {
    static let system = "messaging.system"
    static let destinationName = "messaging.destination.name"
    static let messageID = "messaging.message.id"
    static let conversationID = "messaging.message.conversation_id"
    static let operationType = "messaging.operation.type"
    static let operationName = "messaging.operation.name"
    static let taskName = "qtasks.task.name"
    static let taskAttempt = "qtasks.task.attempt"
    static let taskStatus = "qtasks.task.status"

    /// The `messaging.system` value for RabbitMQ, the broker the wire
    /// format is made for (``MemoryBroker`` stands in for it in tests).
    static let rabbitMQ = "rabbitmq"
}
