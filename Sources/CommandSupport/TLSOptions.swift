import ArgumentParser
import Foundation
import QTasksRabbitMQ

/// TLS to the broker: `--tls-ca`, `--tls-cert`, `--tls-key` and
/// `--tls-insecure-no-verify`, shared by every executable that takes a
/// broker URL. They apply to the `amqps://` URLs of `--url` (each node of a
/// failover list); a plain `amqp://` URL has no TLS to configure.
///
/// Each option falls back to an environment variable, as `--url` falls back
/// to `QTASKS_URL`: `QTASKS_TLS_CA`, `QTASKS_TLS_CERT`, `QTASKS_TLS_KEY`,
/// `QTASKS_TLS_INSECURE_NO_VERIFY=1`. The options become the URL query
/// parameters of `AMQPConfiguration(url:)` (`cacertfile`, `certfile`,
/// `keyfile`, `verify=verify_none`, named as in RabbitMQ's URI guide), so an
/// option wins over the same parameter written in the URL. A client
/// certificate with a URL that has no password logs in with SASL EXTERNAL.
public struct TLSOptions: ParsableArguments {
    @Option(
        name: .customLong("tls-ca"),
        help: ArgumentHelp(
            "amqps: PEM file of the CAs that sign the broker's certificate (default: $QTASKS_TLS_CA, else the system's CA bundle).",
            valueName: "file"))
    public var caFile: String?

    @Option(
        name: .customLong("tls-cert"),
        help: ArgumentHelp(
            "amqps: PEM client certificate for mutual TLS; with no password in the URL, also the identity (SASL EXTERNAL). Default: $QTASKS_TLS_CERT.",
            valueName: "file"))
    public var certificateFile: String?

    @Option(
        name: .customLong("tls-key"),
        help: ArgumentHelp("amqps: PEM private key of --tls-cert, unencrypted (default: $QTASKS_TLS_KEY).", valueName: "file"))
    public var keyFile: String?

    @Flag(
        name: .customLong("tls-insecure-no-verify"),
        help: "amqps: accept ANY broker certificate for ANY host name (encrypted, but open to a man in the middle; for test brokers only; logged as a warning). Default: $QTASKS_TLS_INSECURE_NO_VERIFY=1.")
    public var insecureNoVerification = false

    public init() {}

    private static var environment: [String: String] { ProcessInfo.processInfo.environment }

    private static func fromEnvironment(_ name: String) -> String? {
        environment[name].flatMap { $0.isEmpty ? nil : $0 }
    }

    /// True when an option was given on the command line (not from the
    /// environment): then a URL without `amqps://` is a mistake.
    private var givenOnCommandLine: Bool {
        caFile != nil || certificateFile != nil || keyFile != nil || insecureNoVerification
    }

    /// The query parameters the options and environment add, in order.
    var queryParameters: [(String, String)] {
        var parameters: [(String, String)] = []
        if let file = caFile ?? Self.fromEnvironment("QTASKS_TLS_CA") { parameters.append(("cacertfile", file)) }
        if let file = certificateFile ?? Self.fromEnvironment("QTASKS_TLS_CERT") { parameters.append(("certfile", file)) }
        if let file = keyFile ?? Self.fromEnvironment("QTASKS_TLS_KEY") { parameters.append(("keyfile", file)) }
        if insecureNoVerification || Self.environment["QTASKS_TLS_INSECURE_NO_VERIFY"] == "1" {
            parameters.append(("verify", "verify_none"))
        }
        return parameters
    }

    /// `url` (one URL or a `;`-separated failover list) with the TLS
    /// options added to each `amqps://` URL as query parameters.
    ///
    /// - Throws: `ValidationError` when a TLS option was given on the
    ///   command line and no URL is `amqps://` (the environment variables
    ///   are ignored for plain URLs: they may be set for another broker).
    public func applied(to url: String) throws -> String {
        let parameters = queryParameters
        guard !parameters.isEmpty else { return url }
        var anySecure = false
        let entries = RabbitMQBrokerConfiguration.splitList(url).map { entry -> String in
            let trimmed = entry.trimmingCharacters(in: .whitespacesAndNewlines)
            guard trimmed.lowercased().hasPrefix("amqps://") else { return entry }
            anySecure = true
            var allowed = CharacterSet.urlQueryAllowed
            allowed.remove(charactersIn: "&=+;#")
            let query = parameters.map { name, value in
                "\(name)=\(value.addingPercentEncoding(withAllowedCharacters: allowed) ?? value)"
            }.joined(separator: "&")
            // Before a fragment, if any; after the URL's own parameters, so
            // that an option wins over the same parameter in the URL.
            let (base, fragment) = trimmed.firstIndex(of: "#").map {
                (String(trimmed[..<$0]), String(trimmed[$0...]))
            } ?? (trimmed, "")
            return base + (base.contains("?") ? "&" : "?") + query + fragment
        }
        if !anySecure && givenOnCommandLine {
            throw ValidationError("--tls-ca, --tls-cert, --tls-key and --tls-insecure-no-verify need an amqps:// broker URL")
        }
        return entries.joined(separator: ";")
    }
}
