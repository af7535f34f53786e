/// A value for JSON holds a number JSON cannot represent (an infinity or
/// NaN). Thrown instead of writing `null` in its place, so that a task whose
/// result overflowed fails visibly rather than reporting `success` with a
/// wrong value.
public struct NonFiniteNumberError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The offending number, as Swift prints it (`inf`, `-inf`, `nan`).
    public let value: String

    public init(_ value: Double) {
        self.value = String(describing: value)
    }

    public var description: String {
        "the value holds \(value), which JSON cannot represent; return a finite number (or a string)"
    }
}

extension JSONValue {
    /// Throws ``NonFiniteNumberError`` when this value, or any value nested
    /// in it, is a non-finite double.
    public func checkFinite() throws(NonFiniteNumberError) {
        switch self {
        case .double(let number) where !number.isFinite: throw NonFiniteNumberError(number)
        case .array(let elements): for element in elements { try element.checkFinite() }
        case .object(let members): for member in members.values { try member.checkFinite() }
        default: break
        }
    }
}
