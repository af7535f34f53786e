import Logging

/// How log lines are written on standard error: `text` (swift-log's
/// `StreamLogHandler`, for people) or `json` (``JSONLogHandler``, one
/// object per line, for log shippers).
public enum LogFormat: String, CaseIterable, Sendable {
    case text
    case json

    /// Bootstraps swift-log's `LoggingSystem` with this format at `level`;
    /// `metadataProvider` (for example one that adds `trace_id` and
    /// `span_id`) is asked for metadata on every line. Call once per
    /// process, before the first logger is made.
    public func bootstrap(level: Logger.Level, metadataProvider: Logger.MetadataProvider? = nil) {
        switch self {
        case .text:
            LoggingSystem.bootstrap({ label, metadataProvider in
                var handler = StreamLogHandler.standardError(label: label, metadataProvider: metadataProvider)
                handler.logLevel = level
                return handler
            }, metadataProvider: metadataProvider)
        case .json:
            LoggingSystem.bootstrap({ label, metadataProvider in
                var handler = JSONLogHandler(label: label, metadataProvider: metadataProvider)
                handler.logLevel = level
                return handler
            }, metadataProvider: metadataProvider)
        }
    }
}
