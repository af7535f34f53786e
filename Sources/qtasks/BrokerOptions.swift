import ArgumentParser
import CommandSupport
import Foundation
import QTasks
import QTasksRabbitMQ

/// The broker URL option every command shares.
struct BrokerOptions: ParsableArguments {
    static let defaultURL = "amqp://guest:guest@127.0.0.1:5672/%2F"

    @Option(help: "Broker URL, amqp[s]://user:pass@host:port/vhost exactly (RabbitMQ's URI format: percent-encode a space, '@', ':' or '/' inside a part; the vhost / is %2F); for a cluster, one URL per node separated by ';', tried in turn (default: $QTASKS_URL, else the local broker).")
    var url: String?

    @OptionGroup var urlFile: BrokerURLFileOption

    @OptionGroup(title: "TLS")
    var tls: TLSOptions

    /// `--url`, else `--url-file`, else `QTASKS_URL`, else
    /// `QTASKS_URL_FILE`, else the local default; as given. `validate()`
    /// has refused what cannot be read.
    private var givenURL: String {
        (try? brokerURL()) ?? Self.defaultURL
    }

    private func brokerURL() throws -> String {
        try SecretURL.broker(flag: url, file: urlFile) ?? Self.defaultURL
    }

    /// The URL with the TLS options added to its `amqps://` URLs
    /// (``TLSOptions``); `validate()` has refused the options if they
    /// do not apply.
    var resolvedURL: String {
        (try? tls.applied(to: givenURL)) ?? givenURL
    }

    /// Refuses, before anything connects, a URL that cannot be read (a
    /// file), TLS options that do not apply, and a URL that does not parse
    /// (`AMQPConfiguration(url:)`: RabbitMQ's URI format, strictly): usage
    /// errors, 64, with the password never shown.
    func validate() throws {
        let url = try tls.applied(to: try brokerURL())
        do {
            _ = try RabbitMQBrokerConfiguration(url: url)
        } catch {
            throw ValidationError("\(error)")
        }
    }

    /// Whether a broker error says the queue does not exist (`404
    /// NOT_FOUND` on a passive declare, a `basic.get`, a purge).
    static func isMissingQueue(_ error: any Error) -> Bool {
        (error as? BrokerError)?.replyCode == 404
    }

    /// An admin connection to the broker for `dlq`, `inspect` and `purge`.
    ///
    /// - Throws: `ExitStatus.usage` (64) for a malformed URL,
    ///   `ExitStatus.brokerFailure` (4) when the broker cannot be reached or
    ///   refuses; the reason is printed on standard error.
    func connectAdmin() async throws -> DeadLetterQueueAdmin {
        let configuration: RabbitMQBrokerConfiguration
        do {
            configuration = try RabbitMQBrokerConfiguration(url: resolvedURL)
        } catch {
            printError("qtasks: \(error)")
            throw ExitStatus.usage
        }
        do {
            return try await DeadLetterQueueAdmin.connect(configuration)
        } catch {
            printError("qtasks: cannot connect: \(error)")
            throw ExitStatus.brokerFailure
        }
    }
}
