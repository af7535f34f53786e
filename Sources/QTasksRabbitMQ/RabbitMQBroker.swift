import AMQP
import Logging
import QTasks
import Synchronization

/// A `Broker` over RabbitMQ, through rabbitmq-c (module `AMQP`).
///
/// Topology, all through the default exchange (routing key = queue name):
/// - each task queue is durable and declared **without arguments** (but
///   ``RabbitMQBrokerConfiguration/queueArguments``, `x-queue-type` for a
///   ``QueueType`` other than classic and `x-max-priority` when configured):
///   the declaration Celery, kombu, pika and Python QTasks make for the same
///   queue, so whichever side comes first, the other's is accepted
///   (DESIGN.md, "Queues are shared with foreign producers");
/// - what needs the broker's help comes from a RabbitMQ policy instead of
///   arguments (``TaskQueuePolicy``, applied by `qtasks queues policy
///   apply`): its `dead-letter-exchange`/`dead-letter-routing-key` send
///   what RabbitMQ drops itself (bodies over
///   ``RabbitMQBrokerConfiguration/maxMessageBytes`` the worker rejects
///   unread, quorum delivery limits) to `<queue>.dlq`, and its
///   `delivery-limit` bounds a quorum queue's redeliveries;
/// - `<queue>.dlq` is a durable queue; the worker publishes failed messages
///   there with `x-qtasks-*` headers saying why;
/// - a queue that already exists with other arguments (Dramatiq's
///   dead-letter arguments, a Taskiq quorum queue) is used as it is: the
///   refused declaration (406) is logged once with the argument RabbitMQ
///   named and what it means (``QueueArgumentConflict``), then the queue is
///   declared passively on a new channel;
/// - delayed publishes (retries, `DelayedPublishing`) go to
///   `<queue>.retry.<ms>`, one durable queue per delay (rounded, see
///   ``RetryDelays``) with `x-message-ttl: <ms>`, `x-dead-letter-exchange:
///   ""`, `x-dead-letter-routing-key: "<queue>"` and `x-expires` (so unused
///   ones vanish): the message waits there, unconsumed, and RabbitMQ moves
///   it back to `<queue>` when its TTL expires;
/// - reply queues are server-named, exclusive and auto-deleted: they vanish
///   with the client's connection.
///
/// Connections: one for consuming and acknowledging (and reply queues), one
/// for publishing with publisher confirms, so that flow control on publishes
/// never stalls acks (see DESIGN.md). Both open on first use and again after
/// a loss; a delivery from an earlier consuming channel can no longer be
/// acknowledged (`BrokerError.Code.staleDelivery`): RabbitMQ redelivers it.
public final class RabbitMQBroker: DelayedPublishing, PriorityQueueing {
    public let configuration: RabbitMQBrokerConfiguration
    private let logger: Logger
    private let publisher: ConnectionSlot
    private let consumer: ConnectionSlot
    private let consuming = Mutex(ConsumingState())
    /// Retry queues this process declared, and when (monotonic seconds):
    /// a declaration renews the queue's `x-expires` lease.
    private let retryQueues = Mutex<[String: ContinuousClock.Instant]>([:])

    private struct ConsumingState {
        var nextGeneration: UInt64 = 1
        /// The channels deliveries came from, by the generation in their
        /// tokens.
        var channels: [UInt64: AMQPChannel] = [:]
        /// The consuming session (``consume(_:)``), until the next one.
        var session: ConsumerSession?
        /// Sessions started; the first one throws a refused queue.
        var sessionsStarted = 0
    }

    /// - Parameter configuration: where to connect and how to declare queues.
    ///   Nothing connects until the first operation; call ``connect()`` to
    ///   fail fast on a wrong URL or password.
    public init(configuration: RabbitMQBrokerConfiguration, logger: Logger = Logger(label: "qtasks.rabbitmq")) {
        self.configuration = configuration
        self.logger = logger
        self.publisher = ConnectionSlot(
            endpoints: configuration.endpoints, role: "publisher", confirmWindow: configuration.confirmWindow,
            logger: logger)
        self.consumer = ConnectionSlot(
            endpoints: configuration.endpoints, role: "consumer", confirmWindow: nil, logger: logger)
    }

    /// - Parameter url: `amqp://user:pass@host:port/vhost`.
    /// - Throws: `AMQPError` `.invalidArgument` for a malformed URL.
    public convenience init(url: String, logger: Logger = Logger(label: "qtasks.rabbitmq")) throws {
        self.init(configuration: try RabbitMQBrokerConfiguration(url: url), logger: logger)
    }

    /// Opens both connections now.
    /// - Throws: `BrokerError` `.connectionFailed` with the broker's reply
    ///   (for example `403 ACCESS_REFUSED`).
    public func connect() async throws {
        try await mapErrors {
            _ = try await publisher.channel()
            _ = try await consumer.connection()
        }
    }

    // MARK: Broker

    /// ``RabbitMQBrokerConfiguration/maxPriority``, else an
    /// `x-max-priority` in ``RabbitMQBrokerConfiguration/queueArguments``.
    public func maxPriority(forQueue queue: String) -> Int? {
        if let maxPriority = configuration.maxPriority { return maxPriority }
        switch configuration.queueArguments["x-max-priority"] {
        case .int64(let value)?: return Int(value)
        case .int32(let value)?: return Int(value)
        case .int16(let value)?: return Int(value)
        case .int8(let value)?: return Int(value)
        case .uint8(let value)?: return Int(value)
        case .uint16(let value)?: return Int(value)
        case .uint32(let value)?: return Int(value)
        default: return nil
        }
    }

    public func declareTaskQueue(_ name: String) async throws {
        // Before any broker call: RabbitMQ names a queue declared as ""
        // itself (a durable `amq.gen-…` queue that nothing would ever
        // consume, beside a `.dlq`), and a name too long for its `.dlq` or
        // retry queues fails half-way through.
        try QueueNaming.checkBeforeDeclaring(name)
        try await mapErrors {
            let connection = try await publisher.connection()
            let deadLetterQueue = QueueNaming.deadLetterQueue(for: name)
            let arguments = taskQueueArguments(for: name)
            var deadLetterArguments: AMQPTable = [:]
            if let type = arguments["x-queue-type"] { deadLetterArguments["x-queue-type"] = type }
            for (companion, companionArguments) in configuration.companionQueues.sorted(by: { $0.key < $1.key }) {
                try await declare(companion, arguments: companionArguments, on: connection)
            }
            try await declare(deadLetterQueue, arguments: deadLetterArguments, on: connection)
            try await declare(name, arguments: arguments, on: connection, isTaskQueue: true)
            for binding in configuration.bindings where binding.queue == name {
                try await bind(binding, on: connection)
            }
        }
    }

    /// A task queue's arguments: only what the configuration asks for
    /// explicitly (``RabbitMQBrokerConfiguration/queueArguments``,
    /// ``RabbitMQBrokerConfiguration/queueType`` other than classic,
    /// ``RabbitMQBrokerConfiguration/maxPriority``), which every producer
    /// of the queue must then declare alike. No dead-letter arguments and
    /// no delivery limit: those come from the queue's ``TaskQueuePolicy``.
    private func taskQueueArguments(for queue: String) -> AMQPTable {
        var arguments = configuration.queueArguments
        if let own = configuration.argumentsByQueue[queue] { arguments.merge(own) { $1 } }
        if arguments["x-queue-type"] == nil, configuration.queueType != .classic {
            arguments["x-queue-type"] = .string(configuration.queueType.name)
        }
        if arguments["x-max-priority"] == nil, let maxPriority = configuration.maxPriority {
            arguments["x-max-priority"] = .int64(Int64(maxPriority))
        }
        return arguments
    }

    /// Declares a binding's exchange (durable) and binds its queue, on a
    /// short-lived channel: an exchange of another type closes it with 406.
    private func bind(_ binding: QueueBinding, on connection: AMQPConnection) async throws {
        try await connection.withChannel { channel in
            try await channel.declareExchange(binding.exchange, type: binding.exchangeType.name, durable: true)
            try await channel.bindQueue(binding.queue, exchange: binding.exchange, routingKey: binding.routingKey)
        }
    }

    /// Declares on a short-lived channel: a refused declaration closes its
    /// channel, which must not take the publishing channel down with it.
    /// `isTaskQueue`: the log line of a refusal says what the queue as it
    /// is means for the protections (a `.dlq` or retry queue has none to
    /// lose).
    private func declare(
        _ queue: String, arguments: AMQPTable, on connection: AMQPConnection, isTaskQueue: Bool = false
    ) async throws {
        do {
            try await connection.withChannel { channel in
                _ = try await channel.declareQueue(queue, durable: true, arguments: arguments)
            }
        } catch let error as AMQPError where error.replyCode == 406 {
            // The queue exists with other arguments (made by another tool:
            // Dramatiq's dead-letter arguments, a quorum queue of Taskiq's
            // or of an older worker). Use it as it is rather than refuse to
            // start; the 406 closed that channel, so check on a new one.
            let text = error.replyText ?? ""
            var metadata: Logger.Metadata = ["queue": "\(queue)", "broker": "\(text)"]
            if let conflict = QueueArgumentConflict(replyText: text) {
                metadata["argument"] = "\(conflict.argument)"
                metadata["found"] = "\(conflict.current.map { "'\($0)'" } ?? "none")"
                metadata["declared"] = "\(conflict.received.map { "'\($0)'" } ?? "none")"
                if isTaskQueue {
                    metadata["protection"] = "\(conflict.protectionNote(queue: queue, policy: TaskQueuePolicy.name(forQueue: queue)))"
                }
            }
            logger.warning("queue exists with other arguments; using it as it is", metadata: metadata)
            try await connection.withChannel { check in
                _ = try await check.declareQueue(queue, passive: true)
            }
        }
    }

    public func consume(queues: [String], prefetch: Int) async throws -> AsyncThrowingStream<Delivery, any Error> {
        try await consume(queues.map { QueueSubscription(queue: $0, prefetch: prefetch) })
    }

    /// Consumes each queue on a channel of its own (on the one consumer
    /// connection), each consumer with its own prefetch, into one stream.
    ///
    /// A queue that cannot be consumed while the connection lives on (a
    /// refused `basic.consume` such as `404 NOT_FOUND` or `405
    /// RESOURCE_LOCKED`, a consumer the broker cancelled because its queue
    /// was deleted, its channel closed by the broker) does not end the
    /// stream: its channel is closed, so its unsettled deliveries can no
    /// longer be settled (``canSettle(_:)`` is false, RabbitMQ has
    /// requeued them, or dropped them with a deleted queue), and it is
    /// declared (``declareTaskQueue(_:)``) and consumed again on a new
    /// channel after ``RabbitMQBrokerConfiguration/queueRetryBackoff``,
    /// on its own, until it can be; one log line when it becomes
    /// unavailable (and when the broker's reason changes), one when it is
    /// consumed again. The other queues are served meanwhile.
    ///
    /// The stream ends with an error only when the connection is lost, and
    /// normally after ``stopConsuming()``.
    ///
    /// - Throws: ``BrokerError`` when the consumer connection cannot be
    ///   opened or is lost while the consumers start; on the first call on
    ///   this broker also when a queue is refused (for example `403
    ///   ACCESS_REFUSED` without read permission): at start that is a
    ///   configuration error, to fail fast on. On later calls (consuming
    ///   again after a lost connection) a refused queue is retried on its
    ///   own as above, not thrown.
    public func consume(_ subscriptions: [QueueSubscription]) async throws -> AsyncThrowingStream<Delivery, any Error> {
        // Consuming again (after a lost connection): close what is left of
        // the earlier session, so its unacknowledged deliveries return to
        // their queues and its consumers and retries stop.
        await endSession()
        // A queue named twice is consumed once: a session has one channel
        // per queue.
        var seen: Set<String> = []
        let subscriptions = subscriptions.filter { seen.insert($0.queue).inserted }
        return try await mapErrors {
            let connection = try await consumer.connection()
            let (stream, continuation) = AsyncThrowingStream<Delivery, any Error>.makeStream()
            let session = ConsumerSession(connection: connection, subscriptions: subscriptions, continuation: continuation)
            let strict = consuming.withLock { $0.sessionsStarted == 0 }
            consuming.withLock { $0.session = session }
            for subscription in subscriptions {
                do {
                    try await startConsumer(subscription, in: session)
                } catch {
                    guard connection.isOpen, !strict else {
                        await endSession()
                        throw error
                    }
                    queueUnavailable(subscription.queue, in: session, error: error)
                }
            }
            consuming.withLock { $0.sessionsStarted += 1 }
            return stream
        }
    }

    /// Opens the queue's channel and starts its consumer; the queue's phase
    /// is then `.consuming`. On failure its channel is closed again.
    private func startConsumer(_ subscription: QueueSubscription, in session: ConsumerSession) async throws {
        let queue = subscription.queue
        let channel = try await session.connection.openChannel()
        let generation = consuming.withLock { state in
            defer { state.nextGeneration += 1 }
            state.channels[state.nextGeneration] = channel
            return state.nextGeneration
        }
        session.state.withLock { $0.queues[queue]?.phase = .starting }
        do {
            try await consumeOn(channel, generation: generation, subscription: subscription, in: session)
        } catch {
            consuming.withLock { _ = $0.channels.removeValue(forKey: generation) }
            await channel.close()
            throw error
        }
    }

    /// `basic.qos` and `basic.consume` on the queue's own channel.
    private func consumeOn(
        _ channel: AMQPChannel, generation: UInt64, subscription: QueueSubscription, in session: ConsumerSession
    ) async throws {
        let queue = subscription.queue
        // Per consumer (RabbitMQ's reading of global=false): it applies to
        // the consumers started after it. Not global, because quorum
        // queues refuse a channel-wide prefetch.
        try await channel.setPrefetch(count: min(subscription.prefetch, Int(UInt16.max)))
        // Deliveries go from the connection's owner thread straight into
        // the worker's stream: one hop, no forwarding task.
        let continuation = session.continuation
        let maxBodySize = configuration.maxMessageBytes
        let tag = try await channel.consume(queue: queue, maxBodySize: maxBodySize) { [weak self] event in
            switch event {
            case .delivery(let delivery):
                session.yielded.add(1, ordering: .relaxed)
                continuation.yield(
                    Delivery(
                        message: Message(body: delivery.body, properties: MessageMapping.messageProperties(delivery.properties)),
                        queue: queue, redelivered: delivery.redelivered,
                        token: DeliveryToken(generation: generation, tag: delivery.deliveryTag),
                        discardedBodySize: delivery.bodyDiscarded ? Int(clamping: delivery.bodySize) : nil))
            case .ended(let error):
                self?.consumerEnded(queue, generation: generation, channel: channel, error: error, in: session)
            }
        }
        let (over, stopped, paused) = session.state.withLock { state -> (Bool, Bool, Bool) in
            guard !state.over, state.queues[queue] != nil else { return (true, true, false) }
            // Ended already (the broker cancelled it at once): its end
            // handled the phase.
            guard case .starting = state.queues[queue]?.phase else { return (false, false, false) }
            if state.stopping { return (false, true, false) }
            if state.paused {
                state.queues[queue]?.phase = .paused(channel: channel, generation: generation)
                return (false, false, true)
            }
            state.queues[queue]?.phase = .consuming(channel: channel, generation: generation, tag: tag)
            return (false, false, false)
        }
        if over {
            // The session ended while this consumer started (a new one
            // replaced it): its channel is nobody's.
            consuming.withLock { _ = $0.channels.removeValue(forKey: generation) }
            await channel.close()
            return
        }
        // Stopped or paused while starting: this consumer must not outlive it.
        if stopped || paused {
            do {
                try await channel.cancel(consumerTag: tag)
            } catch {
                // Its channel or connection is gone: no end will come.
                if stopped {
                    session.state.withLock { state in
                        if case .starting? = state.queues[queue]?.phase { state.queues[queue]?.phase = .ended }
                    }
                    session.finishIfStopped()
                }
            }
        }
    }

    /// A queue's consumer ended: cancelled by this process (stopping,
    /// pausing), or by the broker with its channel or connection.
    /// Called on the connection's owner thread: must not block.
    private func consumerEnded(
        _ queue: String, generation: UInt64, channel: AMQPChannel, error: AMQPError?, in session: ConsumerSession
    ) {
        guard let error else {
            // Cancelled by this process: stopConsuming() or pause().
            let stopping = session.state.withLock { state -> Bool in
                guard state.stopping else { return false }
                state.queues[queue]?.phase = .ended
                return true
            }
            if stopping { session.finishIfStopped() }
            return
        }
        // Is this consumer still the queue's? One of a channel this process
        // closed (a replaced session, an earlier attempt) ends unheard.
        let current = session.state.withLock { state -> Bool in
            guard !state.over else { return false }
            switch state.queues[queue]?.phase {
            case .consuming(_, let live, _)?, .paused(_, let live)?: return live == generation
            case .starting?: return true
            default: return false
            }
        }
        guard current else { return }
        guard error.code == .channelClosed, session.connection.isOpen else {
            // The connection is lost: every queue with it. The worker
            // starts a new session.
            session.fail(MessageMapping.brokerError(error))
            return
        }
        guard error.replyCode != 406 else {
            // PRECONDITION_FAILED: the broker's consumer_timeout (an
            // unacknowledged delivery held too long). The worker learns the
            // timeout from this error at the end of the stream and stops its
            // next runs in time (Worker+ConsumerTimeout), so this still ends
            // the session, as before queues had channels of their own.
            session.fail(MessageMapping.brokerError(error))
            return
        }
        // This queue only: its deliveries can no longer be settled (the
        // channel goes), the other queues go on.
        consuming.withLock { _ = $0.channels.removeValue(forKey: generation) }
        Task { await channel.close() }
        let stopping = session.state.withLock { state -> Bool in
            guard state.stopping else { return false }
            state.queues[queue]?.phase = .ended
            return true
        }
        if stopping {
            session.finishIfStopped()
        } else {
            queueUnavailable(queue, in: session, error: error)
        }
    }

    /// Logs that `queue` cannot be consumed (on a change of state or
    /// reason) and schedules its next attempt.
    private func queueUnavailable(_ queue: String, in session: ConsumerSession, error: any Error) {
        let replyCode = (error as? AMQPError)?.replyCode ?? (error as? BrokerError)?.replyCode
        let (failures, changed) = session.state.withLock { state -> (Int, Bool) in
            guard var entry = state.queues[queue] else { return (0, false) }
            entry.failures += 1
            let changed = entry.failures == 1 || entry.lastReplyCode != replyCode
            entry.lastReplyCode = replyCode
            entry.phase = .waiting(retry: nil)
            state.queues[queue] = entry
            return (entry.failures, changed)
        }
        guard failures > 0 else { return }
        let delay = configuration.queueRetryBackoff.delay(forRetry: failures)
        let metadata: Logger.Metadata = [
            "queue": "\(queue)", "error": "\(MessageMapping.brokerError(error))",
            "attempt": "\(failures)", "delay_s": "\(Seconds.logValue(delay))",
        ]
        if changed {
            logger.warning(
                "queue unavailable: consuming it again on its own after a backoff; the other queues are served meanwhile",
                metadata: metadata)
        } else {
            logger.debug("queue still unavailable", metadata: metadata)
        }
        let retry = Task { [weak self] in
            try? await Task.sleep(for: delay)
            guard !Task.isCancelled, let self else { return }
            await self.retryQueue(queue, in: session)
        }
        let keep = session.state.withLock { state -> Bool in
            guard !state.over, !state.stopping, case .waiting(nil)? = state.queues[queue]?.phase else { return false }
            state.queues[queue]?.phase = .waiting(retry: retry)
            return true
        }
        if !keep {
            retry.cancel()
            session.state.withLock { state in
                if case .waiting? = state.queues[queue]?.phase { state.queues[queue]?.phase = .ended }
            }
            session.finishIfStopped()
        }
    }

    /// One attempt to declare and consume `queue` again.
    private func retryQueue(_ queue: String, in session: ConsumerSession) async {
        // Paused (a suspect delivery runs alone): the queue starts with the
        // others when they resume.
        while session.state.withLock({ $0.paused && !$0.over && !$0.stopping }) {
            try? await Task.sleep(for: .milliseconds(200))
            if Task.isCancelled { return }
        }
        let subscription = session.state.withLock { state -> QueueSubscription? in
            guard !state.over, !state.stopping, let entry = state.queues[queue], case .waiting = entry.phase else { return nil }
            state.queues[queue]?.phase = .starting
            return entry.subscription
        }
        guard let subscription else { return }
        guard session.connection.isOpen else {
            session.fail(BrokerError(.connectionLost, "the consumer connection is closed"))
            return
        }
        do {
            try await declareTaskQueue(queue)
            try await startConsumer(subscription, in: session)
        } catch {
            guard session.connection.isOpen else {
                session.fail(BrokerError(.connectionLost, "the consumer connection is closed: \(error)"))
                return
            }
            queueUnavailable(queue, in: session, error: error)
            return
        }
        let failures = session.state.withLock { state -> Int in
            let failures = state.queues[queue]?.failures ?? 0
            state.queues[queue]?.failures = 0
            state.queues[queue]?.lastReplyCode = nil
            return failures
        }
        logger.notice("queue available again: consuming it", metadata: ["queue": "\(queue)", "attempts": "\(failures)"])
    }

    /// Cancels the consumers (`basic.cancel`) and keeps their channels
    /// open, so the deliveries in hand can still be settled; the stream
    /// goes on (a paused queue's end counts for ``stopConsuming()``).
    ///
    /// - Returns: how many deliveries the current stream was handed in
    ///   all, now that no more can come before ``resumeConsuming()``: the
    ///   worker reads the stream up to that count to find what was
    ///   buffered. Nil without a session.
    public func pauseConsuming() async -> Int? {
        guard let session = consuming.withLock({ $0.session }) else { return nil }
        let consumers = session.state.withLock { state -> [(String, AMQPChannel, UInt64, String)] in
            state.paused = true
            var consumers: [(String, AMQPChannel, UInt64, String)] = []
            for (name, queue) in state.queues {
                if case .consuming(let channel, let generation, let tag) = queue.phase {
                    consumers.append((name, channel, generation, tag))
                    state.queues[name]?.phase = .paused(channel: channel, generation: generation)
                }
            }
            return consumers
        }
        for (_, channel, _, tag) in consumers {
            // Deliveries sent before the cancel-ok reach the stream before
            // this returns (AMQPChannel.cancel). A failed cancel is the
            // channel's end, handled by its consumer's handler.
            try? await channel.cancel(consumerTag: tag)
        }
        return session.yielded.load(ordering: .relaxed)
    }

    /// Starts again, on their channels, the consumers ``pauseConsuming()``
    /// cancelled.
    public func resumeConsuming() async {
        guard let session = consuming.withLock({ $0.session }) else { return }
        let paused = session.state.withLock { state -> [(QueueSubscription, AMQPChannel, UInt64)] in
            guard state.paused, !state.over, !state.stopping else { return [] }
            state.paused = false
            var paused: [(QueueSubscription, AMQPChannel, UInt64)] = []
            for (name, queue) in state.queues {
                if case .paused(let channel, let generation) = queue.phase {
                    paused.append((queue.subscription, channel, generation))
                    state.queues[name]?.phase = .starting
                }
            }
            return paused
        }
        for (subscription, channel, generation) in paused {
            do {
                try await consumeOn(channel, generation: generation, subscription: subscription, in: session)
            } catch {
                guard session.connection.isOpen else {
                    session.fail(MessageMapping.brokerError(error))
                    return
                }
                consuming.withLock { _ = $0.channels.removeValue(forKey: generation) }
                await channel.close()
                queueUnavailable(subscription.queue, in: session, error: error)
            }
        }
    }

    /// Ends the current session, if any: closes its channels (their
    /// unacknowledged deliveries return to their queues) and cancels its
    /// retries. Its stream is not finished: it has ended already, or
    /// nobody reads it any more.
    private func endSession() async {
        guard let session = consuming.withLock({ state -> ConsumerSession? in
            defer {
                state.session = nil
                state.channels = [:]
            }
            return state.session
        }) else { return }
        let (channels, retries) = session.end()
        for retry in retries { retry.cancel() }
        for channel in channels { await channel.close() }
    }

    public func stopConsuming() async {
        guard let session = consuming.withLock({ $0.session }) else { return }
        let (consumers, retries) = session.state.withLock { state -> ([(String, AMQPChannel, String)], [Task<Void, Never>]) in
            state.stopping = true
            var consumers: [(String, AMQPChannel, String)] = []
            var retries: [Task<Void, Never>] = []
            for (name, queue) in state.queues {
                switch queue.phase {
                case .consuming(let channel, _, let tag): consumers.append((name, channel, tag))
                case .waiting(let retry):
                    if let retry { retries.append(retry) }
                    state.queues[name]?.phase = .ended
                case .paused:
                    state.queues[name]?.phase = .ended
                case .starting, .ended:
                    // A starting consumer is cancelled by its starter.
                    break
                }
            }
            return (consumers, retries)
        }
        for retry in retries { retry.cancel() }
        session.finishIfStopped()
        for (queue, channel, tag) in consumers {
            do {
                try await channel.cancel(consumerTag: tag)
            } catch {
                logger.debug("consumer cancel failed", metadata: ["tag": "\(tag)", "error": "\(error)"])
                // Its channel or connection is gone: it has ended.
                session.state.withLock { state in
                    if case .consuming(_, _, tag)? = state.queues[queue]?.phase { state.queues[queue]?.phase = .ended }
                }
                session.finishIfStopped()
            }
        }
    }

    /// Publishes on the shared publishing channel, confirmed.
    ///
    /// A message the broker refuses as too large (RabbitMQ's
    /// `max_message_size`: `406 PRECONDITION_FAILED`, which closes the
    /// channel) fails with ``BrokerError/Code/messageTooLarge``. The
    /// refusal names the limit: larger messages are then refused here
    /// (same error, nothing sent) for as long as the publishing connection
    /// lasts, so that they no longer close the channel. The other publishes
    /// that the closed channel failed (sent after the refused one, or not
    /// yet confirmed) are sent again on a new channel, up to
    /// ``channelRetries`` times: a neighbour's refusal does not fail them.
    /// One that had reached its queue before the channel closed then
    /// arrives twice (at-least-once, as after a requeue).
    public func publish(_ message: Message, to queue: String, mandatory: Bool) async throws {
        let size = message.body.count
        let properties = MessageMapping.amqpProperties(message.properties)
        var retries = 0
        while true {
            let channel = try await mapErrors { try await publisher.channel() }
            if let limit = knownMessageLimit(on: channel), size > limit {
                throw MessageMapping.tooLarge(size: size, limit: limit, replyText: nil)
            }
            do {
                try await channel.publish(
                    message.body, exchange: "", routingKey: queue, mandatory: mandatory, properties: properties)
                return
            } catch let error as AMQPError {
                if error.code == .channelClosed { await publisher.invalidate(channel) }
                if let refusal = MessageMapping.OversizeRefusal(error) {
                    learnMessageLimit(refusal.limit, on: channel)
                    if refusal.refuses(bodySize: size) {
                        throw MessageMapping.tooLarge(size: size, limit: refusal.limit, replyText: error.replyText)
                    }
                }
                guard error.code == .channelClosed, retries < Self.channelRetries else {
                    throw MessageMapping.brokerError(error)
                }
                retries += 1
                logger.notice(
                    "publish failed with its channel (closed by the broker for another message); sending it again on a new channel",
                    metadata: ["queue": "\(queue)", "error": "\(error)", "try": "\(retries + 1)"])
            }
        }
    }

    /// Publishes on the shared publishing channel and acknowledges
    /// `delivery` from the publishing connection's owner thread when the
    /// confirm arrives: the ack is handed to the consuming connection there
    /// (`AMQPChannel.enqueueAck`), so no Swift task waits for the confirm
    /// and none is resumed by it. Returns once the publish is handed over.
    ///
    /// Unlike ``publish(_:to:mandatory:)``, a publish failed by its
    /// channel's close is not sent again here: the failure goes to
    /// `completion`, whose caller sends it again the slow way if it wants.
    /// A broker refusal naming a size limit is learnt as there.
    public func publish(
        _ message: Message, to queue: String, mandatory: Bool, thenAcknowledge delivery: Delivery,
        completion: @escaping @Sendable (ConfirmedAcknowledgement) -> Void
    ) async {
        let size = message.body.count
        let channel: AMQPChannel
        do {
            channel = try await mapErrors { try await publisher.channel() }
        } catch {
            completion(.publishFailed(error))
            return
        }
        if let limit = knownMessageLimit(on: channel), size > limit {
            completion(.publishFailed(MessageMapping.tooLarge(size: size, limit: limit, replyText: nil)))
            return
        }
        let consumerChannel: AMQPChannel
        do {
            consumerChannel = try self.channel(for: delivery)
        } catch {
            // Gone already: publishing would double what its redelivery
            // publishes.
            completion(.acknowledgementFailed(error))
            return
        }
        let tag = delivery.token.tag
        do {
            try channel.publish(
                message.body, exchange: "", routingKey: queue, mandatory: mandatory,
                properties: MessageMapping.amqpProperties(message.properties)
            ) { [self] result in
                switch result {
                case .success:
                    do {
                        try consumerChannel.enqueueAck(deliveryTag: tag)
                        completion(.acknowledged)
                    } catch {
                        completion(.acknowledgementFailed(MessageMapping.brokerError(error)))
                    }
                case .failure(let error):
                    completion(.publishFailed(publishFailure(error, size: size, on: channel)))
                }
            }
        } catch let error as AMQPError {
            completion(.publishFailed(publishFailure(error, size: size, on: channel)))
        } catch {
            completion(.publishFailed(error))
        }
    }

    /// What a failed publish on `channel` teaches (a closed channel to
    /// forget, a size limit), and its error as the broker reports it.
    private func publishFailure(_ error: AMQPError, size: Int, on channel: AMQPChannel) -> any Error {
        if error.code == .channelClosed {
            let publisher = self.publisher
            Task { await publisher.invalidate(channel) }
        }
        if let refusal = MessageMapping.OversizeRefusal(error) {
            learnMessageLimit(refusal.limit, on: channel)
            if refusal.refuses(bodySize: size) {
                return MessageMapping.tooLarge(size: size, limit: refusal.limit, replyText: error.replyText)
            }
        }
        return MessageMapping.brokerError(error)
    }

    /// How many times a publish failed by its channel's close (another
    /// message's fault, as far as the broker's reply tells) is sent again
    /// on a new channel.
    static let channelRetries = 3

    /// The broker's maximum message size, once a refusal named it, with
    /// the publishing connection that learned it: RabbitMQ does not
    /// advertise `max_message_size` (not in `connection.start`'s server
    /// properties), and a new connection (a restarted broker, another
    /// node) may have another.
    private let messageLimit = Mutex<(limit: Int, connection: ObjectIdentifier)?>(nil)

    private func knownMessageLimit(on channel: AMQPChannel) -> Int? {
        messageLimit.withLock { known in
            guard let known, known.connection == ObjectIdentifier(channel.connection) else { return nil }
            return known.limit
        }
    }

    private func learnMessageLimit(_ limit: Int, on channel: AMQPChannel) {
        let learned = messageLimit.withLock { known in
            defer { known = (limit, ObjectIdentifier(channel.connection)) }
            return known?.limit != limit || known?.connection != ObjectIdentifier(channel.connection)
        }
        if learned {
            logger.warning(
                "the broker refused a message as too large; larger messages are refused before sending from now on",
                metadata: ["max_message_size": "\(limit)"])
        }
    }

    /// Hands the whole batch to the publishing connection's owner thread at
    /// once (`AMQPChannel.publish(batch:)`): pipelined within the confirm
    /// window, with no thread hop per message. Oversize messages and the
    /// others of a closed channel are handled as by
    /// ``publish(_:to:mandatory:)``: a message the broker refuses as too
    /// large fails alone, the rest of the batch is sent again on a new
    /// channel.
    public func publish(batch publications: [Publication]) async throws -> [Result<Void, any Error>] {
        var results = [Result<Void, any Error>?](repeating: nil, count: publications.count)
        var pending = Array(publications.indices)
        var retries = 0
        while !pending.isEmpty {
            let channel: AMQPChannel
            let outcomes: [Result<Void, AMQPError>]
            var sending: [Int] = []
            do {
                channel = try await mapErrors { try await publisher.channel() }
                let limit = knownMessageLimit(on: channel)
                for index in pending {
                    let size = publications[index].message.body.count
                    if let limit, size > limit {
                        results[index] = .failure(MessageMapping.tooLarge(size: size, limit: limit, replyText: nil))
                    } else {
                        sending.append(index)
                    }
                }
                if sending.isEmpty { break }
                let messages = sending.map { index in
                    let publication = publications[index]
                    return AMQPOutgoingMessage(
                        publication.message.body, routingKey: publication.queue, mandatory: publication.mandatory,
                        properties: MessageMapping.amqpProperties(publication.message.properties))
                }
                do {
                    outcomes = try await channel.publish(batch: messages)
                } catch let error as AMQPError {
                    if error.code == .channelClosed || error.code == .connectionClosed { await publisher.invalidate(channel) }
                    throw MessageMapping.brokerError(error)
                }
            } catch {
                // The first try throws as before; a later one fails only
                // the messages it was sending again.
                guard retries > 0 else { throw error }
                for index in pending where results[index] == nil { results[index] = .failure(error) }
                break
            }
            if outcomes.contains(where: { if case .failure(let error) = $0 { error.code == .channelClosed } else { false } }) {
                await publisher.invalidate(channel)
            }
            var again: [Int] = []
            for (index, outcome) in zip(sending, outcomes) {
                switch outcome {
                case .success:
                    results[index] = .success(())
                case .failure(let error):
                    let size = publications[index].message.body.count
                    if let refusal = MessageMapping.OversizeRefusal(error) {
                        learnMessageLimit(refusal.limit, on: channel)
                        if refusal.refuses(bodySize: size) {
                            results[index] = .failure(
                                MessageMapping.tooLarge(size: size, limit: refusal.limit, replyText: error.replyText))
                            continue
                        }
                    }
                    if error.code == .channelClosed, retries < Self.channelRetries {
                        again.append(index)
                    } else {
                        results[index] = .failure(MessageMapping.brokerError(error))
                    }
                }
            }
            if !again.isEmpty {
                logger.notice(
                    "publishes failed with their channel (closed by the broker for another message); sending them again on a new channel",
                    metadata: ["count": "\(again.count)"])
            }
            pending = again
            retries += 1
        }
        return results.map { $0 ?? .failure(BrokerError(.connectionLost, "the message was not published")) }
    }

    /// Hands the ack to the consuming connection without waiting for it to
    /// be written (see `AMQPChannel.enqueueAck`): if the connection fails
    /// first, RabbitMQ redelivers the message, so at-least-once holds and the
    /// worker does not wait a thread hop per message.
    public func acknowledge(_ delivery: Delivery) async throws {
        let channel = try channel(for: delivery)
        do {
            try channel.enqueueAck(deliveryTag: delivery.token.tag)
        } catch {
            throw MessageMapping.brokerError(error)
        }
    }

    public func reject(_ delivery: Delivery, requeue: Bool) async throws {
        let channel = try channel(for: delivery)
        try await mapErrors { try await channel.reject(deliveryTag: delivery.token.tag, requeue: requeue) }
    }

    /// False when the delivery's consumer session was replaced, or its
    /// channel or connection is closed (the broker closes the channel when
    /// a delivery outlives its `consumer_timeout`): RabbitMQ has requeued it.
    public func canSettle(_ delivery: Delivery) -> Bool {
        guard let channel = consuming.withLock({ $0.channels[delivery.token.generation] }) else { return false }
        return channel.isOpen
    }

    private func channel(for delivery: Delivery) throws -> AMQPChannel {
        guard let channel = consuming.withLock({ $0.channels[delivery.token.generation] }) else {
            throw BrokerError(.staleDelivery, "delivery \(delivery.token.tag) belongs to an unknown consumer")
        }
        return channel
    }

    /// Publishes `message` to `<queue>.retry.<ms>` (declared on first use,
    /// and again before its `x-expires` lease could run out), from which
    /// RabbitMQ dead-letters it back to `queue` after `<ms>`; publisher
    /// confirmed, mandatory. `delay` is rounded by
    /// ``RetryDelays/quantizedMilliseconds(_:)``; under 5 ms the message goes
    /// straight to `queue`.
    ///
    /// - Returns: the delay applied (`.zero` under 5 ms).
    @discardableResult
    public func publish(_ message: Message, to queue: String, after delay: Duration) async throws -> Duration {
        let milliseconds = RetryDelays.quantizedMilliseconds(delay)
        guard milliseconds > 0 else {
            try await publish(message, to: queue, mandatory: true)
            return .zero
        }
        let retryQueue = RetryDelays.queueName(for: queue, milliseconds: milliseconds)
        try await declareRetryQueue(retryQueue, for: queue, milliseconds: milliseconds, force: false)
        do {
            try await publish(message, to: retryQueue, mandatory: true)
        } catch let error as BrokerError where error.code == .unroutable {
            // Deleted behind our back: declare it again, once.
            try await declareRetryQueue(retryQueue, for: queue, milliseconds: milliseconds, force: true)
            try await publish(message, to: retryQueue, mandatory: true)
        }
        return .milliseconds(milliseconds)
    }

    private func declareRetryQueue(_ name: String, for queue: String, milliseconds: Int, force: Bool) async throws {
        let ttl = Duration.milliseconds(milliseconds)
        // The queue lives `expires` after its last declaration; a message
        // published up to `ttl + 30 s` after a declaration expires at most
        // `2 ttl + 30 s` after it, inside the lease with 30 s to spare.
        let expires = 2 * milliseconds + 60_000
        let now = ContinuousClock.now
        if !force, let declared = retryQueues.withLock({ $0[name] }), now - declared < ttl + .seconds(30) { return }
        try await mapErrors {
            let connection = try await publisher.connection()
            try await declare(
                name,
                arguments: [
                    "x-message-ttl": .int64(Int64(milliseconds)),
                    "x-dead-letter-exchange": "",
                    "x-dead-letter-routing-key": .string(queue),
                    "x-expires": .int64(Int64(expires)),
                ],
                on: connection)
        }
        retryQueues.withLock { $0[name] = now }
    }

    public func makeReplyQueue() async throws -> ReplyQueue {
        try await mapErrors {
            let connection = try await consumer.connection()
            let channel = try await connection.openChannel()
            let info = try await channel.declareQueue("", durable: false, exclusive: true, autoDelete: true)
            let amqpConsumer = try await channel.consume(queue: info.name, noAck: true, exclusive: true)
            let (stream, continuation) = AsyncThrowingStream<Message, any Error>.makeStream()
            let forwarding = Task {
                do {
                    for try await delivery in amqpConsumer {
                        continuation.yield(
                            Message(body: delivery.body, properties: MessageMapping.messageProperties(delivery.properties)))
                    }
                    continuation.finish()
                } catch {
                    continuation.finish(throwing: MessageMapping.brokerError(error))
                }
            }
            continuation.onTermination = { _ in forwarding.cancel() }
            return ReplyQueue(name: info.name, messages: stream)
        }
    }

    public func close() async {
        // The connection first: its end finishes the session's stream
        // (with an error, as a loss would), then its retries stop.
        await consumer.close()
        await endSession()
        await publisher.close()
        consuming.withLock { $0 = ConsumingState() }
    }

    private func mapErrors<T>(_ body: () async throws -> T) async throws -> T {
        do {
            return try await body()
        } catch {
            throw MessageMapping.brokerError(error)
        }
    }
}
