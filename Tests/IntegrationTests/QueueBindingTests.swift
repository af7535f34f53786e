import QTasksRabbitMQ
import Testing

/// The `--bind` form, parsed without a broker.
@Suite struct QueueBindingTests {
    @Test func parsesTheCommandLineForm() throws {
        let plain = try QueueBinding(parsing: "shop:topic:orders.*", defaultQueue: "orders")
        #expect(plain == QueueBinding(queue: "orders", exchange: "shop", exchangeType: .topic, routingKey: "orders.*"))
        let named = try QueueBinding(parsing: "QueueTasks:task_queue=shop:direct:a:b", defaultQueue: nil)
        #expect(named == QueueBinding(queue: "QueueTasks:task_queue", exchange: "shop", exchangeType: .direct, routingKey: "a:b"))
        #expect(try QueueBinding(parsing: "fan:fanout:", defaultQueue: "q").routingKey == "")
        #expect(named.description == "QueueTasks:task_queue=shop:direct:a:b")
    }

    @Test func rejectsWhatCannotBeDeclared() {
        for text in ["shop:topic", "shop:queue:key", ":topic:key", "shop:topic:key"] {
            #expect(throws: QueueBindingError.self, "\(text)") {
                try QueueBinding(parsing: text, defaultQueue: text == "shop:topic:key" ? nil : "q")
            }
        }
    }
}
