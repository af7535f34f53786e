import Foundation
import Logging
import QTasks
import Synchronization

/// A logger that prints nothing, so test output stays readable.
let quietLogger: Logger = {
    var logger = Logger(label: "qtasks.test")
    logger.logLevel = .critical
    return logger
}()

func quietConfiguration(
    queues: [String] = ["default"],
    concurrency: Int = 10,
    prefetch: Int? = nil,
    maxMessageBytes: Int = 1_048_576,
    shutdownGracePeriod: Duration? = .seconds(5)
) -> WorkerConfiguration {
    WorkerConfiguration(
        queues: queues,
        concurrency: concurrency,
        prefetch: prefetch,
        maxMessageBytes: maxMessageBytes,
        shutdownGracePeriod: shutdownGracePeriod,
        logger: quietLogger
    )
}

func makeDelivery(
    _ body: String,
    properties: MessageProperties = MessageProperties(),
    queue: String = "default",
    redelivered: Bool = false
) -> Delivery {
    makeDelivery(bytes: Array(body.utf8), properties: properties, queue: queue, redelivered: redelivered)
}

func makeDelivery(
    bytes: [UInt8],
    properties: MessageProperties = MessageProperties(),
    queue: String = "default",
    redelivered: Bool = false
) -> Delivery {
    Delivery(message: Message(body: bytes, properties: properties), queue: queue, redelivered: redelivered, token: DeliveryToken(generation: 1, tag: 1))
}

func execute(_ app: TaskApp, _ body: String, properties: MessageProperties = MessageProperties(), maxMessageBytes: Int = 1_048_576) async -> TaskOutcome {
    await TaskRunner(app: app, maxMessageBytes: maxMessageBytes, logger: quietLogger).execute(makeDelivery(body, properties: properties))
}

extension TaskOutcome {
    var isCompleted: Bool { if case .completed = self { return true } else { return false } }
    var isFailed: Bool { if case .failed = self { return true } else { return false } }
    var isRejected: Bool { if case .rejected = self { return true } else { return false } }
    var isCancelled: Bool { if case .cancelled = self { return true } else { return false } }
}

/// Polls `condition` until it holds or `timeout` passes; returns whether it held.
/// The default is long (it costs nothing when the condition holds): a starved
/// machine (load average 15 on 2 cores) may need seconds for a millisecond step.
func eventually(timeout: Duration = .seconds(30), _ condition: () -> Bool) async -> Bool {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if condition() { return true }
        try? await Task.sleep(for: .milliseconds(5))
    }
    return condition()
}

/// Counts handlers running at once and the most seen.
final class ConcurrencyProbe: Sendable {
    private let state = Mutex((current: 0, maximum: 0, started: 0, finished: 0))

    func enter() {
        state.withLock {
            $0.current += 1
            $0.started += 1
            $0.maximum = max($0.maximum, $0.current)
        }
    }

    func leave() {
        state.withLock {
            $0.current -= 1
            $0.finished += 1
        }
    }

    var current: Int { state.withLock { $0.current } }
    var maximum: Int { state.withLock { $0.maximum } }
    var started: Int { state.withLock { $0.started } }
    var finished: Int { state.withLock { $0.finished } }
}

/// Parses a JSON body into Foundation objects, to check wire bytes without
/// going through the code under test.
func jsonObject(_ bytes: [UInt8]) throws -> [String: Any] {
    try JSONSerialization.jsonObject(with: Data(bytes)) as! [String: Any]
}
