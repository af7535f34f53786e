import Foundation
import QTasks
import QTasksRabbitMQ
import QTasksState
import RabbitMQManagement

/// What a ``Dashboard`` shows and acts on. Every source is optional: a
/// page whose source is missing says so instead of failing.
public struct DashboardConfiguration: Sendable {
    /// The broker: queue counts (passive `queue.declare`), dead-letter
    /// queues (browse, replay, purge). nil: no queue or dead-letter pages.
    public var broker: RabbitMQBrokerConfiguration?
    /// Where workers record tasks and heartbeats (`--result-store`): the
    /// workers and tasks pages, charts, live updates. nil: none of those.
    public var resultStore: (any ResultStore)?
    /// The State store that the scheduler and tasks use: the schedules
    /// and State pages. nil: neither.
    public var stateStore: (any StateStore)?
    /// RabbitMQ's management API: unacknowledged counts and rates, and
    /// every queue of the virtual host. nil: passive declares of
    /// ``queues`` and the queues workers report.
    public var managementAPI: RabbitMQManagementAPI?
    /// Task queues shown even when no live worker consumes them. Default
    /// `["default"]`.
    public var queues: [String]
    /// Who may see and act. Default ``DashboardAuthentication/none``,
    /// which ``Dashboard/makeApplication(host:port:onServerRunning:)``
    /// accepts only on a loopback address.
    public var authentication: DashboardAuthentication
    /// The host names (the `Host` header, without port) requests may use.
    /// Default nil: with credentials any; without, loopback names only
    /// (`127.0.0.1`, `localhost`, `::1`), which refuses DNS-rebinding
    /// pages. Set it when a proxy forwards another name to a dashboard
    /// without credentials of its own.
    public var allowedHosts: [String]?
    /// How often live updates are made (one store query per interval for
    /// all open pages together, whatever the task rate). Default 1 s.
    public var liveUpdateInterval: Duration
    /// The most live-update streams open at once; more are refused with
    /// 503. Default 64.
    public var maxLiveStreams: Int
    /// Dead-letter message bodies shown up to this many bytes. Default
    /// 64 KiB.
    public var maxBodyPreviewBytes: Int

    public init(
        broker: RabbitMQBrokerConfiguration? = nil, resultStore: (any ResultStore)? = nil,
        stateStore: (any StateStore)? = nil, managementAPI: RabbitMQManagementAPI? = nil,
        queues: [String] = ["default"], authentication: DashboardAuthentication = .none,
        allowedHosts: [String]? = nil, liveUpdateInterval: Duration = .seconds(1), maxLiveStreams: Int = 64,
        maxBodyPreviewBytes: Int = 64 * 1024
    ) {
        self.allowedHosts = allowedHosts
        self.broker = broker
        self.resultStore = resultStore
        self.stateStore = stateStore
        self.managementAPI = managementAPI
        self.queues = queues
        self.authentication = authentication
        self.liveUpdateInterval = liveUpdateInterval
        self.maxLiveStreams = maxLiveStreams
        self.maxBodyPreviewBytes = maxBodyPreviewBytes
    }
}

/// Credentials a request must carry: HTTP Basic (RFC 7617) with one user,
/// and/or a bearer token (RFC 6750). Compared in constant time.
public struct DashboardAuthentication: Sendable, CustomStringConvertible {
    let user: String?
    let password: String?
    let token: String?

    /// No credentials asked: anyone who reaches the address may see and
    /// act. Only for a loopback bind (or behind the host app's own auth).
    public static let none = DashboardAuthentication(user: nil, password: nil, token: nil)

    /// HTTP Basic with this user and password.
    public static func basic(user: String, password: String) -> DashboardAuthentication {
        DashboardAuthentication(user: user, password: password, token: nil)
    }

    /// `Authorization: Bearer <token>`.
    public static func bearer(token: String) -> DashboardAuthentication {
        DashboardAuthentication(user: nil, password: nil, token: token)
    }

    /// Either one.
    public static func basic(user: String, password: String, orBearer token: String) -> DashboardAuthentication {
        DashboardAuthentication(user: user, password: password, token: token)
    }

    /// These credentials, and also `Authorization: Bearer <token>`.
    public func acceptingBearer(token: String) -> DashboardAuthentication {
        DashboardAuthentication(user: user, password: password, token: token)
    }

    /// Parses `user:password` (the password may contain `:`).
    ///
    /// - Throws: ``DashboardError`` when there is no `:`, or the user or
    ///   the password is empty.
    public init(parsingUserPassword text: String) throws {
        let trimmed = text.trimmingCharacters(in: .newlines)
        guard let colon = trimmed.firstIndex(of: ":") else {
            throw DashboardError("credentials must be user:password")
        }
        let user = String(trimmed[..<colon])
        let password = String(trimmed[trimmed.index(after: colon)...])
        guard !user.isEmpty, !password.isEmpty else {
            throw DashboardError("credentials must be user:password with neither empty")
        }
        self.init(user: user, password: password, token: nil)
    }

    private init(user: String?, password: String?, token: String?) {
        self.user = user
        self.password = password
        self.token = token
    }

    /// Whether any credentials are asked.
    public var isEnabled: Bool { user != nil || token != nil }

    /// Never the secrets.
    public var description: String {
        switch (user, token) {
        case (nil, nil): return "none"
        case (let user?, nil): return "basic (user \(user))"
        case (nil, _?): return "bearer token"
        case (let user?, _?): return "basic (user \(user)) or bearer token"
        }
    }

    /// Whether an `Authorization` header value carries these credentials.
    func accepts(authorization: String?) -> Bool {
        guard isEnabled else { return true }
        guard let authorization else { return false }
        let parts = authorization.split(separator: " ", maxSplits: 1)
        guard parts.count == 2 else { return false }
        let scheme = parts[0].lowercased()
        let value = parts[1].trimmingCharacters(in: .whitespaces)
        if scheme == "bearer", let token {
            return ConstantTime.equals(Array(value.utf8), Array(token.utf8))
        }
        if scheme == "basic", let user, let password {
            guard let decoded = Data(base64Encoded: value) else { return false }
            // One comparison of the whole "user:password": the time does
            // not tell whether the user or the password was wrong.
            return ConstantTime.equals(Array(decoded), Array("\(user):\(password)".utf8))
        }
        return false
    }
}

/// Comparison whose time depends on the lengths only, not on where the
/// bytes differ.
enum ConstantTime {
    static func equals(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        var difference = UInt8(truncatingIfNeeded: a.count ^ b.count)
        let count = max(a.count, b.count)
        for index in 0..<count {
            let x = index < a.count ? a[index] : 0
            let y = index < b.count ? b[index] : 0
            difference |= x ^ y
        }
        return difference == 0 && a.count == b.count
    }
}

/// The dashboard refused its configuration.
public struct DashboardError: Error, Sendable, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}
