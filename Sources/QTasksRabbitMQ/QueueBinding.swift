/// A binding of a task queue to an exchange other than the default one, so
/// that producers can publish by routing key (`orders.created`) instead of
/// by queue name.
///
/// A ``RabbitMQBroker`` declares the exchange (durable) and the binding
/// whenever it declares the queue (``RabbitMQBroker/declareTaskQueue(_:)``):
/// a worker consuming the queue sets up its routing on start and after
/// every reconnect. The default exchange keeps routing by queue name too.
public struct QueueBinding: Sendable, Hashable, CustomStringConvertible {
    /// The task queue to bind.
    public var queue: String
    /// The exchange name; must not be empty (the default exchange cannot
    /// be bound).
    public var exchange: String
    public var exchangeType: ExchangeType
    /// The binding key: an exact key for `direct`, a pattern for `topic`,
    /// ignored by `fanout`.
    public var routingKey: String

    public init(queue: String, exchange: String, exchangeType: ExchangeType, routingKey: String) {
        self.queue = queue
        self.exchange = exchange
        self.exchangeType = exchangeType
        self.routingKey = routingKey
    }

    /// Parses the command-line form `[QUEUE=]EXCHANGE:TYPE:ROUTING_KEY`
    /// (`orders-queue=shop:topic:orders.*`). Without `QUEUE=` the binding
    /// is for `defaultQueue`.
    ///
    /// - Throws: ``QueueBindingError`` saying what is wrong.
    public init(parsing text: String, defaultQueue: String?) throws {
        var rest = Substring(text)
        var queue = defaultQueue
        if let equals = rest.firstIndex(of: "=") {
            queue = String(rest[..<equals])
            rest = rest[rest.index(after: equals)...]
        }
        let parts = rest.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
        guard parts.count == 3 else {
            throw QueueBindingError("binding '\(text)' must be [QUEUE=]EXCHANGE:TYPE:ROUTING_KEY")
        }
        guard let queue, !queue.isEmpty else {
            throw QueueBindingError("binding '\(text)' names no queue: write QUEUE=EXCHANGE:TYPE:ROUTING_KEY")
        }
        guard !parts[0].isEmpty else {
            throw QueueBindingError("binding '\(text)': the exchange name must not be empty (the default exchange routes by queue name already)")
        }
        guard let type = ExchangeType(name: String(parts[1])) else {
            throw QueueBindingError("binding '\(text)': exchange type must be direct, topic, fanout or headers, not '\(parts[1])'")
        }
        self.init(queue: queue, exchange: String(parts[0]), exchangeType: type, routingKey: String(parts[2]))
    }

    /// `QUEUE=EXCHANGE:TYPE:ROUTING_KEY`.
    public var description: String { "\(queue)=\(exchange):\(exchangeType):\(routingKey)" }
}

/// A binding given in the wrong form.
public struct QueueBindingError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
