/// Helpers for State backend URLs.
///
/// This module (the memory backend and the protocol) only declares the
/// namespace and ``redactedURL(_:)``, which every backend uses in its
/// messages. Opening a backend by URL (`StateStores.open(url:)`,
/// `StateStores.validate(url:)`, `StateStores.resolvedURL(_:)`) needs every
/// backend, so it lives in the `QTasksStateStores` module, which extends this
/// type: importing `QTasksState` alone never pulls in GRDB or hiredis.
public enum StateStores {
    /// `url` with the password (what follows `:` in the user-info part)
    /// replaced by `***`, for logs and messages: `redis://:***@host:6379/0`.
    /// User info without a `:` is replaced whole. Other URLs come back
    /// unchanged.
    public static func redactedURL(_ url: String) -> String {
        guard let separator = url.range(of: "://") else { return url }
        let rest = url[separator.upperBound...]
        // No authority (sqlite:///abs/path) or no user info: nothing to hide.
        guard !rest.hasPrefix("/"), let at = rest.lastIndex(of: "@") else { return url }
        let userInfo = rest[..<at]
        let redactedUserInfo: String
        if let colon = userInfo.firstIndex(of: ":") {
            redactedUserInfo = userInfo[..<colon] + ":***"
        } else {
            redactedUserInfo = "***"
        }
        return url[..<separator.upperBound] + redactedUserInfo + rest[at...]
    }
}
