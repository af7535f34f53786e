import Foundation
import QTasksState

extension StateStores {
    /// The environment variable that names a worker's (and the `qtasks
    /// state` command's) State backend when no `--state URL` is given.
    public static let urlEnvironmentVariable = "QTASKS_STATE_URL"

    /// The file name of the default SQLite backend.
    public static let defaultFileName = ".qtasks-state.db"

    /// The default State backend: an SQLite file named ``defaultFileName`` in
    /// `directory`, as an absolute `sqlite://` URL (percent-encoded).
    ///
    /// Why SQLite and not memory: a memory store lives and dies with one
    /// process, so `step1` on one worker and `step2` on another (or on the
    /// same worker after a restart) would silently see nothing. The file is
    /// durable and shared by every worker process started in the same
    /// directory on one host. For several hosts, name a Redis backend.
    ///
    /// - Parameter directory: default: the current directory.
    /// - Returns: for example `sqlite:///srv/shop/.qtasks-state.db`.
    public static func defaultURL(directory: String = FileManager.default.currentDirectoryPath) -> String {
        var path = directory.hasSuffix("/") ? directory : directory + "/"
        path += defaultFileName
        if !path.hasPrefix("/") { path = FileManager.default.currentDirectoryPath + "/" + path }
        var allowed = CharacterSet.urlPathAllowed
        allowed.remove(charactersIn: "?#%")
        let encoded = path.addingPercentEncoding(withAllowedCharacters: allowed) ?? path
        return "sqlite://" + encoded
    }

    /// The State backend URL a worker or tool uses: `explicit` (its `--state`
    /// option), else ``urlEnvironmentVariable`` when set and not empty, else
    /// ``defaultURL(directory:)``.
    ///
    /// - Parameters:
    ///   - explicit: the command-line option, if given.
    ///   - environment: default: the process's environment.
    ///   - directory: where the default file goes; default: the current directory.
    public static func resolvedURL(
        _ explicit: String?,
        environment: [String: String] = ProcessInfo.processInfo.environment,
        directory: String = FileManager.default.currentDirectoryPath
    ) -> String {
        if let explicit { return explicit }
        if let fromEnvironment = environment[urlEnvironmentVariable], !fromEnvironment.isEmpty {
            return fromEnvironment
        }
        return defaultURL(directory: directory)
    }

    /// Checks a backend URL's syntax without opening anything: for a worker
    /// to refuse a bad `--state` at startup while opening the backend lazily.
    ///
    /// - Throws: `StateError` `.invalidURL`, with the same message
    ///   ``open(url:configuration:)`` would give (password redacted).
    public static func validate(url: String) throws(StateError) {
        _ = try StateStoreURL(parsing: url)
    }
}
