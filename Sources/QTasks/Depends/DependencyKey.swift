/// The identity of one declared ``Dependency``: copies of a dependency
/// share it, two declarations with the same name do not.
final class DependencyKey: Hashable, Sendable, CustomStringConvertible {
    let name: String
    let scope: DependencyScope

    init(name: String, scope: DependencyScope) {
        self.name = name
        self.scope = scope
    }

    static func == (lhs: DependencyKey, rhs: DependencyKey) -> Bool { lhs === rhs }
    func hash(into hasher: inout Hasher) { hasher.combine(ObjectIdentifier(self)) }
    var description: String { name }
}
