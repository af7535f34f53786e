import ArgumentParser
import Foundation
import QTasks
import QTasksResultStores

/// The result store options every command that writes or reads a store
/// shares (`qtasks-example`, `qtasks-scheduler`, `qtasks send`, `qtasks
/// result`, `qtasks tasks`, `qtasks workers`): `--result-store`,
/// `--result-store-file` and `--result-prefix`, with their environment
/// variables.
public struct ResultStoreOptions: ParsableArguments {
    /// The environment variable with the Redis key prefix.
    public static let prefixEnvironmentVariable = "QTASKS_RESULT_PREFIX"

    @Option(
        name: .customLong("result-store"),
        help: ArgumentHelp(
            "Result store URL: sqlite:///path/results.db (one host), redis://host:6379/0 (a fleet) (default: $QTASKS_RESULT_STORE; none: no store).",
            valueName: "url"))
    public var url: String?

    @OptionGroup public var file: ResultStoreURLFileOption

    @Option(
        name: .customLong("result-prefix"),
        help: ArgumentHelp(
            "Redis result stores: the key prefix, records being <prefix>:<uuid> hashes (Python QTasks' app name; default: $QTASKS_RESULT_PREFIX, else QueueTasks). Writers and readers must agree.",
            valueName: "prefix"))
    public var prefix: String?

    public init() {}

    /// `--result-store`, else `--result-store-file`, else
    /// `QTASKS_RESULT_STORE`, else `QTASKS_RESULT_STORE_FILE`; nil when none
    /// is given.
    ///
    /// - Throws: `ValidationError` (exit 64) as ``SecretURL/resultStore(flag:file:)``.
    public func resolvedURL() throws -> String? {
        try SecretURL.resultStore(flag: url, file: file)
    }

    /// `--result-prefix`, else `QTASKS_RESULT_PREFIX` (unless empty), else
    /// nil (the store's default, `QueueTasks`).
    public func resolvedPrefix(environment: [String: String] = ProcessInfo.processInfo.environment) -> String? {
        prefix ?? environment[Self.prefixEnvironmentVariable].flatMap { $0.isEmpty ? nil : $0 }
    }

    public func validate() throws {
        if let url = try resolvedURL() {
            do {
                try ResultStores.validate(url: url)
            } catch {
                throw ValidationError(error.message)
            }
        }
        if let prefix = resolvedPrefix() {
            guard !prefix.isEmpty, !prefix.contains(where: { $0.isWhitespace || $0 == ":" }) else {
                throw ValidationError("--result-prefix must be a non-empty word without spaces or ':', not '\(prefix)'")
            }
        }
    }

    /// `base` with the prefix applied.
    public func configuration(_ base: ResultStoreConfiguration = ResultStoreConfiguration()) -> ResultStoreConfiguration {
        var configuration = base
        if let prefix = resolvedPrefix() { configuration.keyPrefix = prefix }
        return configuration
    }

    /// Opens the store, or returns nil when no URL is given.
    ///
    /// - Throws: ``ResultStoreError`` `.invalidURL` or `.unavailable`, its
    ///   message naming the URL with its password redacted; `ValidationError`
    ///   for an unreadable URL file.
    public func open(_ base: ResultStoreConfiguration = ResultStoreConfiguration()) async throws -> (any ResultStore)? {
        guard let url = try resolvedURL() else { return nil }
        return try await ResultStores.open(url: url, configuration: configuration(base))
    }

    /// The URL with its password redacted, or `none`.
    public var redactedURL: String {
        (try? resolvedURL()).flatMap { $0 }.map(ResultStores.redactedURL) ?? "none"
    }
}
