/// A kind of state, named after a Swift type: the Swift spelling of
/// QTasks' `class MyState(AsyncState): pass`.
///
/// ```swift
/// enum RegistrationState: StateNamespace {}            // namespace "RegistrationState"
///
/// enum Cart: StateNamespace {
///     static let namespace = "shop.cart"                // explicit name
///     static let timeToLive: Duration? = .seconds(3600) // carts expire an hour after their last write
/// }
/// ```
///
/// The namespace must follow ``StateID``'s rules (not empty, no `:`).
public protocol StateNamespace {
    /// The namespace's name. Default: the type's name as
    /// `String(describing:)` prints it (`RegistrationState`), as QTasks uses
    /// the State subclass's name. Override it to keep stored data when
    /// renaming the type.
    static var namespace: String { get }

    /// The time-to-live that ``State`` handles of this namespace apply on
    /// every write (so a state expires that long after its last write).
    /// Default nil: states never expire.
    static var timeToLive: Duration? { get }
}

extension StateNamespace {
    public static var namespace: String { String(describing: Self.self) }
    public static var timeToLive: Duration? { nil }
}
