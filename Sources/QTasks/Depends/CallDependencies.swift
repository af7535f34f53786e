/// The dependency scopes a task call resolves in: its own task scope and
/// its worker's scope.
struct CallDependencies: Sendable {
    let call: DependencyStore
    let worker: DependencyStore
}
