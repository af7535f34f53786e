import QTasks
import QTasksState
import Testing

/// The seed's example 2 (State): a step-by-step registration form.
///
/// ```python
/// class MyState(AsyncState): pass
///
/// @app.task
/// async def step1(state: MyState):
///     await state.set("state", "await_phone")
///     await state.update(step=1, prompt="Введите телефон")
///
/// @app.task
/// async def step2(state: MyState):
///     print(await state.get_all())
///     cur = await state.get("state")
///     if cur != "await_phone": return "error"
///     await state.update(step=2)
///     await state.delete("state")
///     await state.clear()
///     return "ok"
/// ```
@Suite("Seed scenario")
struct SeedScenarioTests {
    enum RegistrationState: StateNamespace {}

    static func step1(_ state: State<RegistrationState>) async throws -> String {
        try await state.set("state", to: "await_phone")
        try await state.update(["step": 1, "prompt": "Введите телефон"])
        return "ok"
    }

    /// Returns the result and the map step2 printed.
    static func step2(_ state: State<RegistrationState>) async throws -> (
        String, [String: JSONValue], [String: JSONValue]
    ) {
        let all = try await state.getAll()
        guard try await state.get("state", as: String.self) == "await_phone" else { return ("error", all, [:]) }
        try await state.update(["step": 2])
        try await state.delete("state")
        let beforeClear = try await state.getAll()
        try await state.clear()
        return ("ok", all, beforeClear)
    }

    @Test(arguments: Backend.available)
    func stepOneWritesAndStepTwoReadsChecksAndClears(_ backend: Backend) async throws {
        try await withStore(backend) { store in
            let key = "user-\(uniqueNamespace())"
            // Two handles, as two task calls (possibly on two workers) would get.
            #expect(try await Self.step1(State(key: key, store: store)) == "ok")
            let (result, printed, beforeClear) = try await Self.step2(State(key: key, store: store))
            #expect(result == "ok")
            #expect(printed == ["state": "await_phone", "step": 1, "prompt": "Введите телефон"])
            // Printed in the seed's shape, Cyrillic unescaped.
            #expect(
                JSONValue.object(printed).description == #"{"prompt":"Введите телефон","state":"await_phone","step":1}"#
            )
            #expect(beforeClear == ["step": 2, "prompt": "Введите телефон"])
            #expect(try await State<RegistrationState>(key: key, store: store).getAll() == [:])
            // step2 on a state step1 never wrote refuses.
            #expect(try await Self.step2(State(key: key, store: store)).0 == "error")
        }
    }

    @Test func namespaceComesFromTheType() {
        #expect(State<RegistrationState>(store: MemoryStateStore()).id == StateID(namespace: "RegistrationState"))
    }
}
