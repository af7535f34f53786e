/// Options shared by the backends; every field has a default.
public struct StateStoreConfiguration: Sendable {
    /// How long an operation may wait for its backend before failing with
    /// ``StateError/Code-swift.struct/unavailable``. Redis: the whole call,
    /// counted from when it is made (its wait behind other calls of the
    /// store, the connect, every socket read and write, a reconnect), so a
    /// frozen server fails each call within it. SQLite: the busy timeout
    /// (waiting for another process's write lock). Default 5 s.
    public var timeout: Duration = .seconds(5)

    /// Redis only: how many optimistic WATCH/MULTI/EXEC rounds
    /// ``StateStore/modify(_:ttl:_:)`` tries before it gives up with
    /// ``StateError/Code-swift.struct/conflict``. Between rounds it waits a
    /// short random time (under 2 ms, growing with the attempt). Default 100.
    public var maxModifyAttempts: Int = 100

    /// Creates the default configuration.
    public init() {}
}
