import QTasks
import QTasksState
import Testing

/// Handles: namespaces from types, time-to-live defaults, conveniences.
@Suite("State handles")
struct StateHandleTests {
    enum RegistrationState: StateNamespace {}
    enum Renamed: StateNamespace {
        static let namespace = "registration.v1"
    }
    enum Expiring: StateNamespace {
        static let timeToLive: Duration? = .milliseconds(200)
    }

    @Test func namespaceIsTheTypeNameUnlessOverridden() {
        let store = MemoryStateStore()
        #expect(State<RegistrationState>(store: store).id == StateID(namespace: "RegistrationState"))
        #expect(State<Renamed>(key: "42", store: store).id == StateID(namespace: "registration.v1", key: "42"))
        #expect(StateID(namespace: "RegistrationState", key: "42").description == "RegistrationState/42")
    }

    @Test func anyStateReachesTheSameStateAsState() async throws {
        let store = MemoryStateStore()
        try await State<RegistrationState>(key: "7", store: store).set("step", to: 1)
        #expect(try await AnyState(namespace: "RegistrationState", key: "7", store: store).getAll() == ["step": 1])
        #expect(AnyState(State<Renamed>(key: "7", store: store)).id == StateID(namespace: "registration.v1", key: "7"))
    }

    @Test func namespaceTimeToLiveIsAppliedOnWrites() async throws {
        let store = MemoryStateStore()
        let state = State<Expiring>(key: "x", store: store)
        #expect(state.ttl == .milliseconds(200))
        try await state.set("a", to: 1)
        try await Task.sleep(for: .milliseconds(400))
        #expect(try await state.getAll() == [:])
        let forever = State<Expiring>(key: "y", store: store, ttl: nil)
        try await forever.set("a", to: 1)
        try await Task.sleep(for: .milliseconds(400))
        #expect(try await forever.getAll() == ["a": 1])
    }

    @Test func incrementStartsAtZeroAndRefusesNonIntegers() async throws {
        let state = AnyState(namespace: "Counters", store: MemoryStateStore())
        #expect(try await state.increment("n") == 1)
        #expect(try await state.increment("n", by: 41) == 42)
        try await state.set("text", to: "seven")
        let error = await expectStateError(.decoding) { try await state.increment("text") }
        #expect(error?.message.contains("string") == true)
        try await state.set("big", to: Int64.max)
        await expectStateError(.invalidArgument) { try await state.increment("big") }
        #expect(try await state.get("big", as: Int64.self) == Int64.max)
    }

    @Test func errorsDescribeThemselves() {
        let error = StateError(.unavailable, "Redis at redis://h:6379/0 is unavailable: Connection refused")
        #expect("\(error)" == "StateError(unavailable): Redis at redis://h:6379/0 is unavailable: Connection refused")
        #expect(error.code != .conflict)
    }
}
