/// The result type of a task that returns nothing: `returning` is null on
/// the wire, and any `returning` decodes to it.
public struct NoResult: Codable, Sendable, Hashable {
    public init() {}

    public init(from decoder: any Decoder) throws {}

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encodeNil()
    }
}
