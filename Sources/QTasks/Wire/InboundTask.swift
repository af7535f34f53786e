import Foundation

/// A task message of any format, read into what the worker needs before it
/// decodes the arguments: the QTasks body that ``TaskEnvelope`` decodes,
/// and the producer's instructions that come with the message (when the
/// task may run, until when, the attempt count, a time limit, what follows
/// it).
///
/// The format is told per message (``WireFormat/init(detecting:body:)``,
/// docs/wire-format.md "Telling the formats apart").
struct InboundTask: Sendable {
    var format: WireFormat
    /// `{"uuid", "task_name", "args", "kwargs", ...}`: the body as sent for
    /// QTasks messages, rewritten for the others.
    var body: [UInt8]
    /// Unix seconds before which the task must not run (Celery `eta` /
    /// `countdown`, Dramatiq `options.eta`, Taskiq `labels.delay`, or the
    /// worker's own ``MessageHeaders/notBefore`` on a deferred copy).
    var notBefore: Double?
    /// Unix seconds after which the task must not run (Celery `expires`,
    /// Dramatiq `options.max_age`).
    var expiresAt: Double?
    /// Attempts made before this one, as the producer counts them (Celery
    /// `retries`, Dramatiq `options.retries`, Taskiq `labels._retries`):
    /// the attempt number when the message has no `x-qtasks-attempt`.
    var retries: Int?
    /// The producer's time limit for this run (Celery `timelimit[0]`,
    /// Dramatiq `options.time_limit`, Taskiq `labels.timeout`).
    var timeLimit: Duration?
    /// Celery's canvas (callbacks, errbacks, chain).
    var canvas: CeleryCanvas?

    init(format: WireFormat, body: [UInt8]) {
        self.format = format
        self.body = body
    }

    /// Reads `message` in its format.
    ///
    /// - Throws: ``TaskInputError`` naming what is wrong or refused.
    static func read(_ message: Message, now: Double = Date().timeIntervalSince1970) throws(TaskInputError) -> InboundTask {
        let properties = message.properties
        var task: InboundTask
        switch WireFormat(detecting: properties, body: message.body) {
        case .qtasks: task = InboundTask(format: .qtasks, body: message.body)
        case .celery: task = try CeleryProtocol.read(body: message.body, properties: properties)
        case .dramatiq: task = try DramatiqProtocol.read(body: message.body)
        case .taskiq: task = try TaskiqProtocol.read(body: message.body, properties: properties, now: now)
        }
        // A copy the worker deferred says when it is due, whatever its
        // format says (a relative delay would otherwise start again).
        if let due = properties.headers[MessageHeaders.notBefore].flatMap(Self.seconds) {
            task.notBefore = due
        }
        return task
    }

    /// When the message may run, without decoding it further than that
    /// takes; nil when it may run now or cannot be read (the runner then
    /// reports what is wrong).
    static func notBefore(of message: Message, now: Double) -> Double? {
        if let due = message.properties.headers[MessageHeaders.notBefore].flatMap(seconds) { return due }
        switch WireFormat(detecting: message.properties, body: message.body) {
        case .qtasks: return nil
        case .celery:
            guard case .string(let text)? = message.properties.headers["eta"] else { return nil }
            return ISOTime.seconds(from: text)
        case .dramatiq, .taskiq:
            return (try? read(message, now: now))?.notBefore
        }
    }

    private static func seconds(_ value: HeaderValue) -> Double? {
        switch value {
        case .double(let number) where number.isFinite: return number
        case .int(let number): return Double(number)
        default: return nil
        }
    }
}
