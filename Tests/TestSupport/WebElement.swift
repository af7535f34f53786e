import Foundation

/// An element of the page a ``ChromeDriver`` shows, by WebDriver reference.
///
/// A reference goes stale when the page replaces the element (a re-render,
/// a new page): its commands then throw `stale element reference`; find it
/// again.
public struct WebElement: Sendable {
    /// The key of an element reference in WebDriver JSON (W3C).
    static let referenceKey = "element-6066-11e4-a52e-4f735466cecf"

    public let id: String
    public let browser: ChromeDriver

    init(_ reference: JSON, in browser: ChromeDriver) throws {
        guard let id = reference[Self.referenceKey]?.string else {
            throw WebDriverError(error: "transport", message: "not an element reference: \(reference)", command: "find element")
        }
        self.id = id
        self.browser = browser
    }

    /// This element as a script argument (`arguments[i]` is the DOM node).
    public var asArgument: JSON { [Self.referenceKey: .string(id)] }

    @discardableResult
    private func command(_ method: String, _ path: String, _ body: JSON? = nil) async throws -> JSON {
        try await browser.command(method, "/element/\(id)\(path)", body)
    }

    /// The rendered text, as a person sees it: hidden parts left out,
    /// whitespace as laid out.
    public var text: String {
        get async throws { try await command("GET", "/text").string ?? "" }
    }

    /// The HTML attribute `name` as written in the markup (or set by
    /// `setAttribute`); nil when absent. An input's current value is
    /// ``property(_:)`` `value`.
    public func attribute(_ name: String) async throws -> String? {
        try await command("GET", "/attribute/\(name)").string
    }

    /// The DOM property `name` (e.g. `value`, `checked`, `disabled`).
    public func property(_ name: String) async throws -> JSON {
        try await command("GET", "/property/\(name)")
    }

    /// True when a person could see the element (chromedriver's visibility
    /// check: not `display: none`, not hidden, has a size).
    public var isDisplayed: Bool {
        get async throws { try await command("GET", "/displayed").bool ?? false }
    }

    /// Scrolls the element into view and clicks its centre, as a mouse
    /// would: throws `element click intercepted` when something covers it,
    /// `element not interactable` when it is hidden.
    public func click() async throws {
        try await command("POST", "/click")
    }

    /// Types `text` into the element (focusing it first).
    public func sendKeys(_ text: String) async throws {
        try await command("POST", "/value", ["text": .string(text)])
    }

    /// Empties an input or a textarea.
    public func clear() async throws {
        try await command("POST", "/clear")
    }

    /// The first element inside this one matching the CSS selector.
    public func findElement(css selector: String) async throws -> WebElement {
        let found = try await command("POST", "/element", ["using": "css selector", "value": .string(selector)])
        return try WebElement(found, in: browser)
    }

    /// Every element inside this one matching the CSS selector.
    public func findElements(css selector: String) async throws -> [WebElement] {
        let found = try await command("POST", "/elements", ["using": "css selector", "value": .string(selector)])
        return try (found.array ?? []).map { try WebElement($0, in: browser) }
    }
}
