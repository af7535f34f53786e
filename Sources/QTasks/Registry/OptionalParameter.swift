/// Lets the argument reader give `nil` to an omitted `Optional` parameter
/// without knowing its wrapped type.
protocol OptionalParameter {
    static var omitted: Self { get }
}

extension Optional: OptionalParameter {
    static var omitted: Self { nil }
}
