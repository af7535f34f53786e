import Foundation
import HTTPTypes
import Hummingbird
import QTasks

/// Every dashboard request passes here: credentials when configured
/// (401 with a Basic challenge otherwise), and for a state-changing
/// request a same-origin check (403 otherwise). Adds the security headers
/// to every answer.
///
/// The same-origin check, as OWASP's CSRF cheat sheet recommends without
/// a token: a POST must carry `X-QTasks-Request: 1` (a header a
/// cross-site form cannot send, and a cross-site script can only send
/// after a CORS preflight, which this server never approves), its
/// `Origin`, when present, must be this dashboard's host, and its
/// `Sec-Fetch-Site`, when present, `same-origin` or `none`.
struct AccessControl<Context: RequestContext>: RouterMiddleware {
    let authentication: DashboardAuthentication
    /// Host names (without port) a request may name; nil: any.
    let allowedHosts: Set<String>?

    init(authentication: DashboardAuthentication, allowedHosts: [String]?) {
        self.authentication = authentication
        // Without credentials, only loopback names: a page on another
        // site whose name is re-pointed at 127.0.0.1 (DNS rebinding) is
        // then refused, though the browser takes it as same-origin.
        let hosts = allowedHosts ?? (authentication.isEnabled ? nil : ["127.0.0.1", "localhost", "::1"])
        self.allowedHosts = hosts.map { Set($0.map { $0.lowercased() }) }
    }

    /// The host of an authority (`host:port`, `[v6]:port`), lowercased.
    static func hostName(_ authority: String) -> String {
        var text = authority.lowercased()
        if text.hasPrefix("[") {
            text.removeFirst()
            return String(text.prefix { $0 != "]" })
        }
        if let colon = text.lastIndex(of: ":"), text.firstIndex(of: ":") == colon { text = String(text[..<colon]) }
        return text
    }

    func hostIsAllowed(_ request: Request) -> Bool {
        guard let allowedHosts else { return true }
        guard let authority = request.head.authority else { return false }
        let host = Self.hostName(authority)
        return allowedHosts.contains(host) || (allowedHosts.contains("127.0.0.1") && Dashboard.isLoopback(host))
    }

    static var actionHeader: HTTPField.Name { HTTPField.Name("X-QTasks-Request")! }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws
        -> Response
    {
        guard hostIsAllowed(request) else {
            return Self.secured(
                Self.refusal(
                    .forbidden,
                    "host \(request.head.authority ?? "(none)") not allowed: without credentials the dashboard answers to loopback names only (DashboardConfiguration.allowedHosts)"))
        }
        guard authentication.accepts(authorization: request.headers[.authorization]) else {
            var response = Self.refusal(.unauthorized, "credentials required (HTTP Basic or a bearer token)")
            response.headers[.wwwAuthenticate] = "Basic realm=\"qtasks dashboard\", charset=\"UTF-8\""
            return Self.secured(response)
        }
        if request.method != .get && request.method != .head {
            if let reason = Self.crossOriginReason(request) {
                return Self.secured(Self.refusal(.forbidden, reason))
            }
        }
        return Self.secured(try await next(request, context))
    }

    /// Why a state-changing request is refused, or nil when it is
    /// same-origin.
    static func crossOriginReason(_ request: Request) -> String? {
        guard request.headers[actionHeader] == "1" else {
            return "a state-changing request needs the header X-QTasks-Request: 1"
        }
        if let site = request.headers[HTTPField.Name("Sec-Fetch-Site")!], site != "same-origin", site != "none" {
            return "cross-origin request refused (Sec-Fetch-Site: \(site))"
        }
        if let origin = request.headers[.origin] {
            let host = request.head.authority
            guard let originHost = URLComponents(string: origin).map({ components -> String in
                let name = components.host ?? ""
                return components.port.map { "\(name):\($0)" } ?? name
            }), let host, originHost.lowercased() == host.lowercased()
            else {
                return "cross-origin request refused (Origin \(origin))"
            }
        }
        return nil
    }

    static func refusal(_ status: HTTPResponse.Status, _ message: String) -> Response {
        let body = JSONValue.object(["error": .string(message)]).description
        return Response(
            status: status, headers: [.contentType: "application/json; charset=utf-8"],
            body: ResponseBody(byteBuffer: ByteBuffer(string: body)))
    }

    /// Scripts and styles only from the dashboard itself, no framing.
    static func secured(_ response: Response) -> Response {
        var response = response
        response.headers[.contentSecurityPolicy] =
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
        response.headers[.xContentTypeOptions] = "nosniff"
        response.headers[HTTPField.Name("Referrer-Policy")!] = "same-origin"
        response.headers[HTTPField.Name("X-Frame-Options")!] = "DENY"
        return response
    }
}
