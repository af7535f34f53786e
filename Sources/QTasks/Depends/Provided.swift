/// What a ``Dependency``'s factory returns: the value, and optionally how
/// to tear it down when its scope ends.
///
/// ```swift
/// return .value(config)                                  // nothing to close
/// return .value(db, teardown: { db, outcome in           // setup / teardown
///     if outcome.failed { await db.rollback() } else { try await db.commit() }
///     await db.close()
/// })
/// ```
public struct Provided<Value: Sendable>: Sendable {
    let value: Value
    let teardown: (@Sendable (Value, DependencyOutcome) async throws -> Void)?

    /// A value with nothing to tear down (Python's plain function).
    public static func value(_ value: Value) -> Provided {
        Provided(value: value, teardown: nil)
    }

    /// A value and its teardown (Python's generator or async context
    /// manager: the code after `yield` / `__aexit__`).
    ///
    /// - Parameters:
    ///   - value: what resolving the dependency returns.
    ///   - teardown: runs once when the scope ends, with the value and how
    ///     the scope ended; teardowns run in reverse order of setup and are
    ///     not skipped by cancellation. A thrown error is logged at `error`
    ///     level; in task scope it also fails a task that had succeeded
    ///     (see ``DependencyError/Code/teardownFailed``).
    public static func value(
        _ value: Value,
        teardown: @escaping @Sendable (Value, DependencyOutcome) async throws -> Void
    ) -> Provided {
        Provided(value: value, teardown: teardown)
    }
}
