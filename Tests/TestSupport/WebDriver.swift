import Foundation

/// The W3C WebDriver commands the dashboard's tests use, on the session of
/// a ``ChromeDriver``. Each is one HTTP request to chromedriver; an error
/// answer throws ``WebDriverError`` with chromedriver's message.
///
/// No implicit waits: a page updated by script is awaited with
/// ``waitUntil(_:timeout:_:)`` or ``waitForText(_:css:timeout:)``, which
/// poll, so that a test waits as long as needed and no longer.
extension ChromeDriver {
    /// Sends a command of this session: `path` is relative to
    /// `/session/{id}` (e.g. `/url`).
    @discardableResult
    public func command(_ method: String, _ path: String, _ body: JSON? = nil) async throws -> JSON {
        try await transport.send(method, "/session/\(sessionID)\(path)", body)
    }

    // MARK: Navigation

    /// Loads `url` and returns once the page has loaded (its `load` event;
    /// at most the 60 s page load timeout).
    public func navigate(to url: String) async throws {
        try await command("POST", "/url", ["url": .string(url)])
    }

    public var currentURL: String {
        get async throws { try await command("GET", "/url").string ?? "" }
    }

    public var title: String {
        get async throws { try await command("GET", "/title").string ?? "" }
    }

    /// The DOM serialized now (after scripts changed it), not the HTML the
    /// server sent.
    public var pageSource: String {
        get async throws { try await command("GET", "/source").string ?? "" }
    }

    // MARK: Elements

    /// The first element matching the CSS selector; throws `no such
    /// element` when none does.
    public func findElement(css selector: String) async throws -> WebElement {
        let found = try await command("POST", "/element", ["using": "css selector", "value": .string(selector)])
        return try WebElement(found, in: self)
    }

    /// Every element matching the CSS selector, in document order; empty
    /// when none does.
    public func findElements(css selector: String) async throws -> [WebElement] {
        let found = try await command("POST", "/elements", ["using": "css selector", "value": .string(selector)])
        return try (found.array ?? []).map { try WebElement($0, in: self) }
    }

    // MARK: Scripts

    /// Runs `script` as the body of a function in the page, with `args` as
    /// `arguments`, and returns what it returns (DOM elements come back as
    /// element references, `{"element-6066-…": id}`).
    @discardableResult
    public func executeScript(_ script: String, args: [JSON] = []) async throws -> JSON {
        try await command("POST", "/execute/sync", ["script": .string(script), "args": .array(args)])
    }

    /// Like ``executeScript(_:args:)``, but the script finishes by calling
    /// its last argument, e.g. `arguments[arguments.length - 1](value)`:
    /// for a `fetch` and other promises (at most the 30 s script timeout).
    @discardableResult
    public func executeAsyncScript(_ script: String, args: [JSON] = []) async throws -> JSON {
        try await command("POST", "/execute/async", ["script": .string(script), "args": .array(args)])
    }

    // MARK: Screenshots

    /// A PNG of the viewport (1280×900).
    public func screenshot() async throws -> Data {
        let encoded = try await command("GET", "/screenshot").string ?? ""
        guard let png = Data(base64Encoded: encoded) else {
            throw WebDriverError(error: "transport", message: "screenshot is not base64", command: "GET /screenshot")
        }
        return png
    }

    /// Writes ``screenshot()`` to `file`, e.g. to keep what a failed test
    /// saw.
    public func saveScreenshot(to file: URL) async throws {
        try await screenshot().write(to: file)
    }

    // MARK: Waiting

    /// Polls `condition` every 50 ms until it holds, for at most `timeout`.
    ///
    /// - Throws: ``BrowserTimeout`` naming `what`; or what `condition`
    ///   throws (catch `no such element` inside it if that means "not yet").
    public func waitUntil(
        _ what: @autoclosure () -> String, timeout: Duration = .seconds(15), _ condition: () async throws -> Bool
    ) async throws {
        let deadline = ContinuousClock.now + timeout
        while try await !condition() {
            guard ContinuousClock.now < deadline else {
                throw BrowserTimeout("timed out after \(timeout) waiting for \(what()) at \((try? await currentURL) ?? "?")")
            }
            try await Task.sleep(for: .milliseconds(50))
        }
    }

    /// Waits until an element matching `selector` shows `text` (its
    /// rendered text, as a person sees it, contains it) and returns it.
    ///
    /// - Throws: ``BrowserTimeout`` with the texts last seen.
    @discardableResult
    public func waitForText(_ text: String, css selector: String, timeout: Duration = .seconds(15)) async throws -> WebElement {
        var lastSeen: [String] = []
        var match: WebElement?
        do {
            try await waitUntil("'\(text)' in \(selector)", timeout: timeout) {
                lastSeen = []
                for element in try await findElements(css: selector) {
                    // Replaced by the page between find and read: look again.
                    guard let shown = try? await element.text else { continue }
                    lastSeen.append(shown)
                    if shown.contains(text) {
                        match = element
                        return true
                    }
                }
                return false
            }
        } catch let timeout as BrowserTimeout {
            throw BrowserTimeout("\(timeout); \(selector) showed \(lastSeen)")
        }
        return match!
    }

    // MARK: Dialogs

    /// The message of the open `alert()`, `confirm()` or `prompt()`; nil
    /// when none is open.
    public var dialogText: String? {
        get async throws {
            do {
                return try await command("GET", "/alert/text").string
            } catch let error as WebDriverError where error.error == "no such alert" {
                return nil
            }
        }
    }

    /// Waits until a dialog opens (a click's handler opens it after the
    /// click returned) and returns its message.
    @discardableResult
    public func waitForDialog(timeout: Duration = .seconds(15)) async throws -> String {
        var text: String?
        try await waitUntil("a JavaScript dialog", timeout: timeout) {
            text = try await dialogText
            return text != nil
        }
        return text!
    }

    /// Presses OK: `confirm()` returns true.
    public func acceptDialog() async throws {
        try await command("POST", "/alert/accept")
    }

    /// Presses Cancel: `confirm()` returns false.
    public func dismissDialog() async throws {
        try await command("POST", "/alert/dismiss")
    }

    // MARK: Chrome DevTools

    /// Runs a Chrome DevTools Protocol command through chromedriver's
    /// passthrough (`POST /session/{id}/goog/cdp/execute`).
    @discardableResult
    public func devTools(_ command: String, _ parameters: JSON = [:]) async throws -> JSON {
        try await self.command("POST", "/goog/cdp/execute", ["cmd": .string(command), "params": parameters])
    }

    /// Adds `headers` to every request the browser sends from now on (page
    /// loads, `fetch`, XHR; every origin), replacing earlier extra headers.
    public func setExtraHeaders(_ headers: [String: String]) async throws {
        try await devTools("Network.enable")
        try await devTools("Network.setExtraHTTPHeaders", ["headers": .object(headers.mapValues { .string($0) })])
    }

    /// Sends HTTP basic credentials with every request, with no 401 round
    /// trip and nothing in the page's URL.
    ///
    /// What headless Chromium 156 (Debian 12) does with basic auth, checked
    /// by hand against a server that answers 401 without credentials:
    /// - `navigate(to: "http://user:pass@127.0.0.1:port/")` works: the first
    ///   request gets the 401, Chromium retries with the credentials, the
    ///   page loads. But the page's URL then keeps `user:pass@`, and a
    ///   relative `fetch("/api/...")` from it throws a TypeError ("Request
    ///   cannot be constructed from a URL that includes credentials", as the
    ///   Fetch standard says); `fetch(location.origin + "/api/...")` and XHR
    ///   work. A page whose scripts fetch relative URLs breaks.
    /// - Without credentials, the 401 leaves an empty document (`<html>
    ///   <head></head><body></body></html>`, title ""), not the 401's body:
    ///   the login prompt is not a JavaScript dialog and WebDriver cannot
    ///   answer it.
    /// - This method (CDP `Network.setExtraHTTPHeaders`) has no such catch:
    ///   the URL stays clean and every request, relative fetches included,
    ///   carries the header. Use it for the dashboard; use the URL form to
    ///   test what a person typing such a URL gets.
    public func setBasicAuthentication(user: String, password: String) async throws {
        let credentials = Data("\(user):\(password)".utf8).base64EncodedString()
        try await setExtraHeaders(["Authorization": "Basic \(credentials)"])
    }
}
