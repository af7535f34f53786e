import QTasks

/// The tasks of these tests, declared once for both sides.
enum Tasks {
    static let add = TaskDefinition("add", arguments: Int.self, Int.self, returning: Int.self)
    static let order = TaskDefinition("order", parameters: ["sku", "quantity"], arguments: String.self, Int.self, returning: Receipt.self)
    static let ping = TaskDefinition("ping", returning: String.self)
    static let remember = TaskDefinition("remember", arguments: String.self)
    /// Registered under `add`'s name with another result type: what a
    /// producer built against another version of the task meets.
    static let addAsText = TaskDefinition("add", arguments: Int.self, Int.self, returning: [String].self)
}

struct Receipt: Codable, Sendable, Equatable {
    var sku: String
    var quantity: Int
    var total: Double
}

struct OutOfStock: Error, CustomStringConvertible {
    var sku: String
    var description: String { "\(sku) is out of stock" }
}

/// Registers the test tasks; `remembered` collects what `remember` got.
func makeApp(remembered: Recorder<String> = Recorder()) throws -> TaskApp {
    let app = TaskApp(name: "typed-tests")
    try app.register(Tasks.add) { a, b in a + b }
    try app.register(Tasks.order) { (context: TaskContext, sku: String, quantity: Int) in
        guard sku != "none" else { throw OutOfStock(sku: sku) }
        return Receipt(sku: sku, quantity: quantity, total: Double(quantity) * 2.5)
    }
    try app.register(Tasks.ping) { "pong" }
    try app.register(Tasks.remember) { text in await remembered.append(text) }
    return app
}

/// Collects values from concurrent tasks, in arrival order.
actor Recorder<Value: Sendable> {
    private(set) var values: [Value] = []
    func append(_ value: Value) { values.append(value) }
}
