/// The parts of an AMQP URI, read strictly by RabbitMQ's "AMQP URI
/// Specification" (https://www.rabbitmq.com/docs/uri-spec):
///
/// ```
/// amqp_URI       = ("amqp://" / "amqps://") amqp_authority [ "/" vhost ] [ "?" query ]
/// amqp_authority = [ amqp_userinfo "@" ] host [ ":" port ]
/// amqp_userinfo  = username [ ":" password ]
/// username       = *( unreserved / pct-encoded / sub-delims )
/// password       = *( unreserved / pct-encoded / sub-delims )
/// vhost          = segment
/// ```
///
/// Anything else is refused with the reason, rather than read the way a
/// lenient URL parser would (Foundation's `URLComponents` reads
/// `amqp:/h:5692` as the default host with vhost `h:5692`, and
/// `amqp://a b@@h` as the user `a b@`). Parsed by hand, without Foundation,
/// so that what is accepted is exactly what is written here.
struct URIParts {
    var secure: Bool
    /// Percent-decoded; nil when absent (the default applies).
    var user: String?
    var password: String?
    /// Without the brackets of an IPv6 literal; nil when empty.
    var host: String?
    var port: Int?
    /// Percent-decoded; nil for an absent or empty path (the default `/`).
    var virtualHost: String?
    /// `name=value` pairs, percent-decoded, in order.
    var query: [(name: String, value: String)] = []

    /// - Parameter invalid: makes the error for a reason; reasons never
    ///   quote the password.
    init(_ url: String, invalid: (String) -> AMQPError) throws {
        let text = Substring(url)
        guard let colon = text.firstIndex(of: ":"), AMQPConfiguration.isScheme(text[..<colon]) else {
            throw invalid("it must start with amqp:// or amqps://")
        }
        switch text[..<colon].lowercased() {
        case "amqp": secure = false
        case "amqps": secure = true
        case let other: throw invalid("scheme must be amqp or amqps, not \(other)")
        }
        let afterScheme = text[text.index(after: colon)...]
        guard afterScheme.hasPrefix("//") else {
            throw invalid("the scheme must be followed by '//' (\(text[..<colon])://host...), not '\(afterScheme.prefix(2))'")
        }
        var rest = afterScheme.dropFirst(2)
        if rest.contains("#") { throw invalid("'#' is not allowed (write it %23)") }

        // The query, from the first '?'.
        if let question = rest.firstIndex(of: "?") {
            for item in rest[rest.index(after: question)...].split(separator: "&", omittingEmptySubsequences: true) {
                let pair = item.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
                let name = try Self.decode(pair[0], allowed: Self.queryCharacters, what: "query parameter name", invalid: invalid)
                let value = pair.count > 1
                    ? try Self.decode(pair[1], allowed: Self.queryCharacters, what: "query parameter '\(name)'", invalid: invalid)
                    : ""
                query.append((name, value))
            }
            rest = rest[..<question]
        }

        // The vhost: everything after the authority's end, one segment.
        let authority: Substring
        if let slash = rest.firstIndex(of: "/") {
            authority = rest[..<slash]
            let segment = rest[rest.index(after: slash)...]
            if segment.contains("/") {
                throw invalid("the vhost is one path segment: write a '/' in it as %2F")
            }
            if !segment.isEmpty {
                virtualHost = try Self.decode(segment, allowed: Self.vhostCharacters, what: "vhost", invalid: invalid)
            }
        } else {
            authority = rest
        }

        // userinfo '@' host ':' port
        var hostPort = authority
        let ats = authority.filter { $0 == "@" }.count
        if ats > 1 {
            throw invalid("more than one '@': write an '@' in the user name or password as %40")
        }
        if let at = authority.firstIndex(of: "@") {
            let userinfo = authority[..<at]
            hostPort = authority[authority.index(after: at)...]
            if let separator = userinfo.firstIndex(of: ":") {
                user = try Self.decode(userinfo[..<separator], allowed: Self.userinfoCharacters, what: "user name", invalid: invalid)
                let secret = userinfo[userinfo.index(after: separator)...]
                if secret.contains(":") { throw invalid("the password holds a ':': write it %3A") }
                password = try Self.decode(secret, allowed: Self.userinfoCharacters, what: "password", quoting: false, invalid: invalid)
            } else {
                user = try Self.decode(userinfo, allowed: Self.userinfoCharacters, what: "user name", invalid: invalid)
            }
        }

        var portText: Substring?
        if hostPort.hasPrefix("[") {
            guard let close = hostPort.firstIndex(of: "]") else { throw invalid("an IPv6 address lacks its closing ']'") }
            let literal = hostPort[hostPort.index(after: hostPort.startIndex)..<close]
            guard !literal.isEmpty, literal.allSatisfy({ $0.isASCII && ($0.isHexDigit || $0 == ":" || $0 == ".") }) else {
                throw invalid("'[\(literal)]' is not an IPv6 address")
            }
            host = String(literal)
            let after = hostPort[hostPort.index(after: close)...]
            if !after.isEmpty {
                guard after.first == ":" else { throw invalid("unexpected '\(after)' after the IPv6 address") }
                portText = after.dropFirst()
            }
        } else {
            var name = hostPort
            if let separator = hostPort.firstIndex(of: ":") {
                name = hostPort[..<separator]
                portText = hostPort[hostPort.index(after: separator)...]
            }
            if !name.isEmpty {
                host = try Self.decode(name, allowed: Self.userinfoCharacters, what: "host", invalid: invalid)
            }
        }
        if let portText {
            guard !portText.isEmpty else { throw invalid("the port after ':' is empty") }
            guard portText.count <= 5, portText.allSatisfy({ $0.isASCII && $0.isNumber }), let number = Int(portText) else {
                throw invalid("port '\(portText)' is not a number 1...65535")
            }
            guard (1...65535).contains(number) else { throw invalid("port \(number) is out of range 1...65535") }
            port = number
        }
    }

    // RFC 3986: unreserved = ALPHA / DIGIT / "-" / "." / "_" / "~";
    // sub-delims = "!" / "$" / "&" / "'" / "(" / ")" / "*" / "+" / "," / ";" / "=".
    private static let unreserved: Set<Character> = Set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
    private static let subDelimiters: Set<Character> = Set("!$&'()*+,;=")
    static let userinfoCharacters = unreserved.union(subDelimiters)
    /// A path segment's pchar.
    static let vhostCharacters = userinfoCharacters.union(":@")
    /// A query's characters, less the separators '&' and '=' (split first).
    static let queryCharacters = unreserved.union("!$'()*+,;:@/?")

    /// `text` percent-decoded, after checking that it holds only `allowed`
    /// characters and well-formed `%XX` escapes of UTF-8.
    ///
    /// - Parameter quoting: whether the message may quote the character
    ///   (never for a password).
    static func decode(
        _ text: Substring, allowed: Set<Character>, what: String, quoting: Bool = true, invalid: (String) -> AMQPError
    ) throws -> String {
        var bytes: [UInt8] = []
        var index = text.startIndex
        while index < text.endIndex {
            let character = text[index]
            if character == "%" {
                let first = text.index(after: index)
                guard first < text.endIndex, text.index(after: first) < text.endIndex,
                      let high = text[first].hexDigitValue, let low = text[text.index(after: first)].hexDigitValue
                else {
                    throw invalid("a '%' in the \(what) is not followed by two hex digits (write a '%' itself as %25)")
                }
                bytes.append(UInt8(high * 16 + low))
                index = text.index(first, offsetBy: 2)
                continue
            }
            guard allowed.contains(character) else {
                let shown = character == " " ? "a space" : "'\(AMQPConfiguration.printable(String(character)))'"
                throw invalid(
                    quoting
                        ? "\(shown) is not allowed in the \(what): percent-encode it (a space is %20)"
                        : "the \(what) holds a character that must be percent-encoded (a space is %20, '@' %40, '/' %2F)")
            }
            bytes.append(contentsOf: Array(String(character).utf8))
            index = text.index(after: index)
        }
        guard let decoded = String(validating: bytes, as: UTF8.self) else {
            throw invalid("the \(what) is not UTF-8 once percent-decoded")
        }
        return decoded
    }
}
