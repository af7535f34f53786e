/// A task's arguments as recorded in its events and result-store record:
/// bounded in size, or left out.
///
/// JSON form: `{"args": [...], "kwargs": {...}}`, plus `"truncated": true`
/// when the arguments were over the bound (then `args` and `kwargs` are
/// empty and `text` holds the first bytes of their JSON text, cut at a
/// character boundary), or `{"omitted": true}` for a task registered with
/// ``TaskOptions/recordsArguments`` false (secret arguments).
public struct RecordedArguments: Sendable, Hashable, Codable {
    public var args: [JSONValue]
    public var kwargs: [String: JSONValue]
    /// The arguments were larger than the bound: `args` and `kwargs` are
    /// empty and ``text`` has their start.
    public var truncated: Bool
    /// The first bytes of the arguments' JSON text, when ``truncated``.
    public var text: String?
    /// The task's arguments are secret and were not recorded.
    public var omitted: Bool

    public init(args: [JSONValue], kwargs: [String: JSONValue]) {
        self.args = args
        self.kwargs = kwargs
        self.truncated = false
        self.text = nil
        self.omitted = false
    }

    /// Arguments left out on purpose.
    public static let omitted: RecordedArguments = {
        var arguments = RecordedArguments(args: [], kwargs: [:])
        arguments.omitted = true
        return arguments
    }()

    /// `args` and `kwargs`, or a truncated copy when their JSON text is
    /// over `maxBytes` bytes.
    public static func bounded(args: [JSONValue], kwargs: [String: JSONValue], maxBytes: Int) -> RecordedArguments {
        bounded(args: args, kwargs: kwargs, maxBytes: maxBytes, sourceSize: nil)
    }

    /// ``bounded(args:kwargs:maxBytes:)``, without writing the JSON text to
    /// measure it when the message body they came from (`sourceSize`
    /// bytes) is at most half the bound: the text cannot then be over it.
    static func bounded(args: [JSONValue], kwargs: [String: JSONValue], maxBytes: Int, sourceSize: Int?) -> RecordedArguments {
        let full = RecordedArguments(args: args, kwargs: kwargs)
        if let sourceSize, sourceSize <= maxBytes / 2 { return full }
        let text = full.jsonText
        guard text.utf8.count > maxBytes else { return full }
        var cut = RecordedArguments(args: [], kwargs: [:])
        cut.truncated = true
        var end = text.utf8.index(text.utf8.startIndex, offsetBy: max(0, maxBytes))
        // Back to a character boundary, so that the text stays valid UTF-8.
        while end > text.startIndex, text.utf8[end] & 0xC0 == 0x80 { end = text.utf8.index(before: end) }
        cut.text = String(text[..<end])
        return cut
    }

    /// `{"args":[…],"kwargs":{…}}` as compact JSON text.
    var jsonText: String {
        JSONValue.object(["args": .array(args), "kwargs": .object(kwargs)]).description
    }

    enum CodingKeys: String, CodingKey { case args, kwargs, truncated, text, omitted }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        args = try c.decodeIfPresent([JSONValue].self, forKey: .args) ?? []
        kwargs = try c.decodeIfPresent([String: JSONValue].self, forKey: .kwargs) ?? [:]
        truncated = try c.decodeIfPresent(Bool.self, forKey: .truncated) ?? false
        text = try c.decodeIfPresent(String.self, forKey: .text)
        omitted = try c.decodeIfPresent(Bool.self, forKey: .omitted) ?? false
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        if omitted {
            try c.encode(true, forKey: .omitted)
            return
        }
        try c.encode(args, forKey: .args)
        try c.encode(kwargs, forKey: .kwargs)
        if truncated {
            try c.encode(true, forKey: .truncated)
            try c.encodeIfPresent(text, forKey: .text)
        }
    }
}
