import Foundation

/// What a worker says about itself every
/// ``TaskEventRecording/heartbeatInterval``: recorded in the result store
/// until ``expiresAt`` (so a worker that stops heartbeating drops out) and
/// published to the events exchange with the routing key
/// `worker.heartbeat` (`worker.offline` for the last one, at shutdown).
///
/// JSON form: snake_case keys, times in Unix seconds.
public struct WorkerHeartbeat: Sendable, Hashable, Codable {
    /// ``TaskEventRecording/workerID``: `<host>.<pid>.<4 hex digits>`.
    public var workerID: String
    public var host: String
    public var pid: Int
    /// The queues it consumes.
    public var queues: [String]
    public var concurrency: Int
    /// Tasks being processed now.
    public var inFlight: Int
    /// Deliveries processed since it started (every outcome).
    public var processed: Int
    /// Of those, the ones that ended with status `error`.
    public var failed: Int
    /// Of those, the ones that were retried.
    public var retried: Int
    /// The swift-qtasks version (``QTasksVersion/current``).
    public var version: String
    public var startedAt: Date
    /// When this heartbeat was made.
    public var sentAt: Date
    /// When a store forgets it unless a newer one comes: `sentAt` plus the
    /// heartbeat time-to-live.
    public var expiresAt: Date
    /// False in the last heartbeat, sent at graceful shutdown: the store
    /// then forgets the worker at once.
    public var isOnline: Bool

    public init(
        workerID: String, host: String, pid: Int, queues: [String], concurrency: Int, inFlight: Int,
        processed: Int, failed: Int, retried: Int, version: String = QTasksVersion.current,
        startedAt: Date, sentAt: Date, expiresAt: Date, isOnline: Bool = true
    ) {
        self.workerID = workerID
        self.host = host
        self.pid = pid
        self.queues = queues
        self.concurrency = concurrency
        self.inFlight = inFlight
        self.processed = processed
        self.failed = failed
        self.retried = retried
        self.version = version
        self.startedAt = startedAt
        self.sentAt = sentAt
        self.expiresAt = expiresAt
        self.isOnline = isOnline
    }

    /// The events exchange's routing key.
    public var routingKey: String { isOnline ? "worker.heartbeat" : "worker.offline" }

    enum CodingKeys: String, CodingKey {
        case host, pid, queues, concurrency, processed, failed, retried, version
        case workerID = "worker_id"
        case inFlight = "in_flight"
        case startedAt = "started_at"
        case sentAt = "sent_at"
        case expiresAt = "expires_at"
        case isOnline = "online"
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        workerID = try c.decode(String.self, forKey: .workerID)
        host = try c.decode(String.self, forKey: .host)
        pid = try c.decode(Int.self, forKey: .pid)
        queues = try c.decode([String].self, forKey: .queues)
        concurrency = try c.decode(Int.self, forKey: .concurrency)
        inFlight = try c.decode(Int.self, forKey: .inFlight)
        processed = try c.decode(Int.self, forKey: .processed)
        failed = try c.decode(Int.self, forKey: .failed)
        retried = try c.decodeIfPresent(Int.self, forKey: .retried) ?? 0
        version = try c.decode(String.self, forKey: .version)
        startedAt = Date(timeIntervalSince1970: try c.decode(Double.self, forKey: .startedAt))
        sentAt = Date(timeIntervalSince1970: try c.decode(Double.self, forKey: .sentAt))
        expiresAt = Date(timeIntervalSince1970: try c.decode(Double.self, forKey: .expiresAt))
        isOnline = try c.decodeIfPresent(Bool.self, forKey: .isOnline) ?? true
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(workerID, forKey: .workerID)
        try c.encode(host, forKey: .host)
        try c.encode(pid, forKey: .pid)
        try c.encode(queues, forKey: .queues)
        try c.encode(concurrency, forKey: .concurrency)
        try c.encode(inFlight, forKey: .inFlight)
        try c.encode(processed, forKey: .processed)
        try c.encode(failed, forKey: .failed)
        try c.encode(retried, forKey: .retried)
        try c.encode(version, forKey: .version)
        try c.encode(startedAt.timeIntervalSince1970, forKey: .startedAt)
        try c.encode(sentAt.timeIntervalSince1970, forKey: .sentAt)
        try c.encode(expiresAt.timeIntervalSince1970, forKey: .expiresAt)
        try c.encode(isOnline, forKey: .isOnline)
    }
}

/// The package's version, as workers report it in their heartbeats.
public enum QTasksVersion {
    /// Semantic version of this build of swift-qtasks.
    public static let current = "0.4.0"
}
