import QTasks
import QTasksState

/// The seed's `class MyState(AsyncState): pass`: the namespace of the
/// registration form's state ("MyState").
struct MyState: StateNamespace {}

extension ExampleTasks {
    /// The fields of ``MyState`` in the order the seed prints them; `step2`
    /// prints any other field after these, sorted by name.
    static let stateFieldOrder = ["state", "step", "prompt"]

    /// `step1` and `step2`: the seed's State example, a step-by-step
    /// registration form whose steps may run on different workers.
    ///
    /// Both take an optional `user` (positional, or `{"kwargs": {"user": …}}`,
    /// a string or an integer): the state's key, so that several users'
    /// forms do not collide. Without it they use the namespace's one state,
    /// exactly like the seed.
    ///
    /// - Parameters:
    ///   - app: where to register them.
    ///   - stateStore: the worker's State backend.
    static func registerStateSteps(on app: TaskApp, stateStore: Dependency<any StateStore>) throws {
        // step1(user?): asks for the phone number.
        try app.register(Example.step1) { (context: TaskContext, user: JSONValue?) in
            let state = try await context.state(MyState.self, key: try stateKey(user), from: stateStore)
            try await state.set("state", to: "await_phone")
            try await state.update(["step": 1, "prompt": "Введите телефон"])
            return "ok"
        }

        // step2(user?): prints the state, checks it, moves on, clears it.
        // stdout: {"state": "await_phone", "step": 1, "prompt": "Введите телефон"}
        try app.register(Example.step2) { (context: TaskContext, user: JSONValue?) in
            let state = try await context.state(MyState.self, key: try stateKey(user), from: stateStore)
            printLine(pythonStyleJSON(try await state.getAll(), order: stateFieldOrder))

            guard try await state.get("state") == .string("await_phone") else { return "error" }
            try await state.update(["step": 2])
            try await state.delete("state")
            try await state.clear()
            return "ok"
        }
    }

    /// The registration form as three workflow steps (``Example/registration(user:phone:)``):
    /// the chain carries the user from step to step, State the form.
    static func registerRegistrationSteps(on app: TaskApp, stateStore: Dependency<any StateStore>) throws {
        // Step 1: the form starts, waiting for the phone.
        try app.register(Example.registerAsk) { (context: TaskContext, user: String) in
            let form = try await context.state(MyState.self, key: "registration:" + user, from: stateStore)
            try await form.update(["state": "await_phone", "step": 1, "prompt": "Введите телефон"])
            return user
        }
        // Step 2: the phone arrived; checked, kept in the form.
        try app.register(Example.registerPhone) { (context: TaskContext, user: String, phone: String) in
            let form = try await context.state(MyState.self, key: "registration:" + user, from: stateStore)
            guard try await form.get("state") == .string("await_phone") else {
                throw ExampleError("the registration form of \(user) is not waiting for a phone")
            }
            let digits = phone.filter(\.isNumber)
            guard phone.allSatisfy({ $0.isNumber || "+-() ".contains($0) }), (7...15).contains(digits.count) else {
                throw ExampleError("'\(phone)' is not a phone number")
            }
            try await form.update(["state": "await_confirm", "step": 2, "phone": .string(phone)])
            return user
        }
        // Step 3: confirmed; the form is returned and cleared.
        try app.register(Example.registerConfirm) { (context: TaskContext, user: String) in
            let form = try await context.state(MyState.self, key: "registration:" + user, from: stateStore)
            let fields = try await form.getAll()
            guard fields["state"] == .string("await_confirm"), let phone = fields["phone"] else {
                throw ExampleError("the registration form of \(user) is not waiting for a confirmation")
            }
            try await form.clear()
            return ["user": .string(user), "phone": phone, "registered": true]
        }
    }

    /// The state key for a `user` argument: a string as is, an integer in
    /// decimal, nil (or JSON null) for no key.
    ///
    /// - Throws: ``ExampleError`` for any other JSON value.
    static func stateKey(_ user: JSONValue?) throws -> String? {
        switch user {
        case nil, .null?: return nil
        case .string(let text)?: return text
        case .int(let number)?: return String(number)
        case let other?: throw ExampleError("user must be a string or an integer, not \(other)")
        }
    }

    /// A JSON object as Python's `json.dumps(…, ensure_ascii=False)` writes
    /// it (`{"a": 1, "b": "текст"}`: a space after `:` and `,`, non-ASCII
    /// text unescaped): the fields named in `order` first, in that order,
    /// then the others sorted by name. Values are compact JSON.
    ///
    /// The stores keep no insertion order (a document is a map), so the
    /// order is the task's: ``stateFieldOrder``.
    static func pythonStyleJSON(_ fields: [String: JSONValue], order: [String]) -> String {
        let first = order.filter { fields[$0] != nil }
        let rest = fields.keys.filter { !order.contains($0) }.sorted()
        let members = (first + rest).map { "\(JSONValue.string($0)): \(fields[$0]!)" }
        return "{" + members.joined(separator: ", ") + "}"
    }
}
