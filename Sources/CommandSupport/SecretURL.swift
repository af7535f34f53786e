import ArgumentParser
import Foundation
import QTasksResultStores

/// Where a URL that may hold a password comes from: a flag, a file, an
/// environment variable, or a file named by one, in that order.
///
/// A file keeps the password out of the process list (`ps` shows flags)
/// and out of the environment (`/proc/<pid>/environ`, crash reports): a
/// Kubernetes secret mounted as a volume, a systemd credential
/// (`LoadCredential=` puts it in `$CREDENTIALS_DIRECTORY`), a Docker
/// secret. The file holds the URL alone; surrounding whitespace and the
/// trailing newline that editors and `echo` add are ignored.
public enum SecretURL {
    /// The URL from `flag`, else the content of `file`, else the
    /// environment variable `variable`, else the content of the file named
    /// by `<variable>_FILE`; nil when none is set.
    ///
    /// - Parameters:
    ///   - flagName: the flag's name for messages (`--url`).
    /// - Throws: `ValidationError` (a usage error, exit 64) when both the
    ///   flag and the file flag are given, or when a file cannot be read or
    ///   is empty. The message names the file, never its content.
    public static func resolve(
        flag: String?, file: String?, flagName: String, variable: String,
        environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws -> String? {
        if flag != nil, file != nil {
            throw ValidationError("give \(flagName) or \(flagName)-file, not both")
        }
        if let flag { return flag }
        if let file { return try read(file, source: "\(flagName)-file") }
        if let value = environment[variable], !value.isEmpty { return value }
        if let file = environment[variable + "_FILE"], !file.isEmpty {
            return try read(file, source: "\(variable)_FILE")
        }
        return nil
    }

    private static func read(_ path: String, source: String) throws -> String {
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            let reason = (error as NSError).localizedDescription
            throw ValidationError("cannot read \(source) \(path): \(reason)")
        }
        let text = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        guard !text.isEmpty else { throw ValidationError("\(source) \(path) is empty") }
        return text
    }
}

extension SecretURL {
    /// The broker URL: `--url`, `--url-file`, `QTASKS_URL`, `QTASKS_URL_FILE`;
    /// nil when none is set.
    ///
    /// - Throws: `ValidationError`, as ``resolve(flag:file:flagName:variable:environment:)``.
    public static func broker(flag: String?, file: BrokerURLFileOption) throws -> String? {
        try resolve(flag: flag, file: file.path, flagName: "--url", variable: "QTASKS_URL")
    }

    /// The State URL: `--state`, `--state-file`, `QTASKS_STATE_URL`,
    /// `QTASKS_STATE_URL_FILE`; nil when none is set.
    ///
    /// - Throws: `ValidationError`, as ``resolve(flag:file:flagName:variable:environment:)``.
    public static func state(flag: String?, file: StateURLFileOption) throws -> String? {
        try resolve(flag: flag, file: file.path, flagName: "--state", variable: "QTASKS_STATE_URL")
    }

    /// The result store URL: `--result-store`, `--result-store-file`,
    /// `QTASKS_RESULT_STORE`, `QTASKS_RESULT_STORE_FILE`; nil when none is
    /// set (no store).
    ///
    /// - Throws: `ValidationError`, as ``resolve(flag:file:flagName:variable:environment:)``.
    public static func resultStore(flag: String?, file: ResultStoreURLFileOption) throws -> String? {
        try resolve(flag: flag, file: file.path, flagName: "--result-store", variable: ResultStores.environmentVariable)
    }
}

/// `--url-file`, shared by every executable that takes `--url`.
public struct BrokerURLFileOption: ParsableArguments {
    @Option(
        name: .customLong("url-file"),
        help: ArgumentHelp(
            "A file holding the broker URL (a Kubernetes secret, a systemd credential), so that its password is in no process list or environment; else $QTASKS_URL_FILE when $QTASKS_URL is unset.",
            valueName: "file"))
    public var path: String?

    public init() {}
}

/// `--state-file`, shared by every executable that takes `--state`.
public struct StateURLFileOption: ParsableArguments {
    @Option(
        name: .customLong("state-file"),
        help: ArgumentHelp(
            "A file holding the State backend URL (for a Redis password); else $QTASKS_STATE_URL_FILE when $QTASKS_STATE_URL is unset.",
            valueName: "file"))
    public var path: String?

    public init() {}
}

/// `--result-store-file`, shared by every executable that takes
/// `--result-store` (through ``ResultStoreOptions``).
public struct ResultStoreURLFileOption: ParsableArguments {
    @Option(
        name: .customLong("result-store-file"),
        help: ArgumentHelp(
            "A file holding the result store URL (for a Redis password); else $QTASKS_RESULT_STORE_FILE when $QTASKS_RESULT_STORE is unset.",
            valueName: "file"))
    public var path: String?

    public init() {}
}
