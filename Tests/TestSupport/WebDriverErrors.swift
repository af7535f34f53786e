/// Chromium or chromedriver is not installed: a browser test skips (or, when
/// `QTASKS_REQUIRE_BROWSER=1`, fails) with this message.
public struct BrowserUnavailable: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// A WebDriver command that failed: chromedriver's answer
/// `{"value": {"error": ..., "message": ...}}`, or a transport failure.
public struct WebDriverError: Error, CustomStringConvertible {
    /// The W3C error code, e.g. `no such element`, `no such alert`,
    /// `stale element reference`, `javascript error`, `timeout`; for
    /// failures outside the protocol: `transport` (no or no JSON answer).
    public let error: String
    /// chromedriver's message (its first line says what went wrong).
    public let message: String
    /// The command, e.g. `POST /session/{id}/element`.
    public let command: String

    public init(error: String, message: String, command: String) {
        self.error = error
        self.message = message
        self.command = command
    }

    public var description: String {
        "WebDriver \(command): \(error): \(message)"
    }
}

/// A ``ChromeDriver/waitUntil(_:timeout:_:)`` whose condition did not hold
/// in time.
public struct BrowserTimeout: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
