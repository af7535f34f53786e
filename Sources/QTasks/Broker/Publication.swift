/// A message to publish to a queue, one of a batch
/// (``Broker/publish(batch:)``).
public struct Publication: Sendable {
    public var message: Message
    /// The queue (default exchange, this routing key).
    public var queue: String
    /// Whether a message no queue takes fails as `.unroutable` instead of
    /// vanishing.
    public var mandatory: Bool

    public init(_ message: Message, to queue: String, mandatory: Bool = true) {
        self.message = message
        self.queue = queue
        self.mandatory = mandatory
    }
}

extension Broker {
    /// Publishes each message with ``publish(_:to:mandatory:)``, up to 1024
    /// at once, and returns their outcomes in order. Brokers that can hand
    /// a batch to their connection at once implement it themselves.
    public func publish(batch publications: [Publication]) async throws -> [Result<Void, any Error>] {
        await withTaskGroup(of: (Int, Result<Void, any Error>).self, returning: [Result<Void, any Error>].self) { group in
            var outcomes: [(Int, Result<Void, any Error>)] = []
            outcomes.reserveCapacity(publications.count)
            var next = 0
            var running = 0
            while true {
                if next < publications.count, running < 1024 {
                    let (index, publication) = (next, publications[next])
                    next += 1
                    running += 1
                    group.addTask {
                        do {
                            try await self.publish(publication.message, to: publication.queue, mandatory: publication.mandatory)
                            return (index, .success(()))
                        } catch {
                            return (index, .failure(error))
                        }
                    }
                    continue
                }
                guard let outcome = await group.next() else { break }
                running -= 1
                outcomes.append(outcome)
            }
            return outcomes.sorted { $0.0 < $1.0 }.map(\.1)
        }
    }
}
