import AMQP
import Foundation
import Synchronization
import Testing

/// The AMQP layer against a real RabbitMQ.
@Suite(.enabled(if: TestBroker.enabled, "no RabbitMQ reachable at QTASKS_URL; deploy/test.sh starts one"))
struct AMQPConnectionTests {
    private func withChannel<T>(_ body: (AMQPConnection, AMQPChannel) async throws -> T) async throws -> T {
        let connection = try await AMQPConnection.connect(TestBroker.configuration)
        let channel = try await connection.openChannel()
        do {
            let result = try await body(connection, channel)
            await connection.close()
            return result
        } catch {
            await connection.close()
            throw error
        }
    }

    @Test func publishesWithConfirmAndConsumesWithEveryProperty() async throws {
        try await withChannel { _, channel in
            let queue = TestBroker.uniqueQueue()
            try await channel.declareQueue(queue, durable: false, autoDelete: true)
            try await channel.enableConfirms()
            let headers: AMQPTable = [
                "x-text": "Привет, мир", "x-int": .int64(-42), "x-small": .int8(7), "x-uint": .uint32(7),
                "x-bool": true, "x-double": .double(2.5), "x-bytes": .bytes([0, 255, 1]),
                "x-array": .array([.int32(1), "two"]), "x-table": .table(["nested": .int32(3)]),
                "x-timestamp": .timestamp(1_764_460_800), "x-decimal": .decimal(scale: 2, value: 12345),
                "x-void": .void,
            ]
            let properties = AMQPProperties(
                contentType: "application/json", contentEncoding: "utf-8", headers: headers,
                deliveryMode: AMQPProperties.persistentDeliveryMode, priority: 3, correlationID: "corr-1",
                replyTo: "replies", expiration: "60000", messageID: "msg-1", timestamp: 1_764_460_800, type: "task",
                appID: "tests")
            let body = Array("{\"text\": \"Введите телефон\"}".utf8)
            try await channel.publish(body, routingKey: queue, properties: properties)

            let consumer = try await channel.consume(queue: queue)
            var iterator = consumer.makeAsyncIterator()
            let delivery = try #require(try await iterator.next())
            #expect(delivery.body == body)
            #expect(delivery.routingKey == queue)
            #expect(delivery.exchange == "")
            #expect(!delivery.redelivered)
            #expect(delivery.properties.contentType == "application/json")
            #expect(delivery.properties.contentEncoding == "utf-8")
            #expect(delivery.properties.deliveryMode == 2)
            #expect(delivery.properties.priority == 3)
            #expect(delivery.properties.correlationID == "corr-1")
            #expect(delivery.properties.replyTo == "replies")
            #expect(delivery.properties.expiration == "60000")
            #expect(delivery.properties.messageID == "msg-1")
            #expect(delivery.properties.timestamp == 1_764_460_800)
            #expect(delivery.properties.type == "task")
            #expect(delivery.properties.appID == "tests")
            // RabbitMQ stores headers as they were sent, except that it
            // widens a few integer types on the way (documented server
            // behaviour); compare the ones it keeps exactly.
            let received = try #require(delivery.properties.headers)
            #expect(received["x-text"] == "Привет, мир")
            #expect(received["x-int"] == .int64(-42))
            #expect(received["x-bool"] == true)
            #expect(received["x-double"] == .double(2.5))
            #expect(received["x-bytes"] == .bytes([0, 255, 1]))
            #expect(received["x-table"] == .table(["nested": .int32(3)]))
            #expect(received["x-timestamp"] == .timestamp(1_764_460_800))
            #expect(received["x-decimal"] == .decimal(scale: 2, value: 12345))
            #expect(received["x-void"] == .void)
            if case .array(let array)? = received["x-array"] {
                #expect(array.count == 2)
                #expect(array.last == "two")
            } else {
                Issue.record("x-array came back as \(String(describing: received["x-array"]))")
            }
            try await delivery.ack()
            let info = try await channel.declareQueue(queue, passive: true)
            #expect(info.messageCount == 0)
            try await channel.cancel(consumerTag: consumer.tag)
        }
    }

    @Test func largeBodiesCrossFrameBoundaries() async throws {
        try await withChannel { _, channel in
            let queue = TestBroker.uniqueQueue()
            try await channel.declareQueue(queue, durable: false, autoDelete: true)
            try await channel.enableConfirms()
            let body = (0..<3_000_000).map { UInt8(truncatingIfNeeded: $0 &* 31) }
            try await channel.publish(body, routingKey: queue)
            let delivery = try #require(try await channel.get(queue: queue, noAck: true))
            #expect(delivery.body == body)
            #expect(try await channel.get(queue: queue, noAck: true) == nil)
        }
    }

    @Test func confirmWindowBoundsUnconfirmedPublishes() async throws {
        try await withChannel { _, channel in
            let queue = TestBroker.uniqueQueue()
            try await channel.declareQueue(queue, durable: false, autoDelete: true)
            try await channel.enableConfirms(window: 8)
            try await withThrowingTaskGroup(of: Void.self) { group in
                for index in 0..<2000 {
                    group.addTask {
                        try await channel.publish(Array("\(index)".utf8), routingKey: queue)
                    }
                }
                try await group.waitForAll()
            }
            let info = try await channel.declareQueue(queue, passive: true)
            #expect(info.messageCount == 2000)
        }
    }

    @Test func prefetchBoundsUnackedDeliveries() async throws {
        try await withChannel { connection, channel in
            let queue = TestBroker.uniqueQueue()
            try await channel.declareQueue(queue, durable: false, autoDelete: true)
            try await channel.enableConfirms()
            for index in 0..<20 { try await channel.publish(Array("\(index)".utf8), routingKey: queue) }
            let consuming = try await connection.openChannel()
            try await consuming.setPrefetch(count: 5)
            let consumer = try await consuming.consume(queue: queue)
            var held: [AMQPDelivery] = []
            for try await delivery in consumer {
                held.append(delivery)
                if held.count == 5 { break }
            }
            // With five unacked, the broker sends no sixth.
            try await Task.sleep(for: .milliseconds(300))
            let info = try await channel.declareQueue(queue, passive: true)
            #expect(info.messageCount == 15)
            for delivery in held { try await delivery.ack() }
            #expect(held.map { String(decoding: $0.body, as: UTF8.self) } == ["0", "1", "2", "3", "4"])
        }
    }

    @Test func mandatoryPublishToNowhereIsReturned() async throws {
        try await withChannel { _, channel in
            try await channel.enableConfirms()
            await #expect {
                try await channel.publish([1], routingKey: TestBroker.uniqueQueue("missing"), mandatory: true)
            } throws: { error in
                (error as? AMQPError)?.code == .publishReturned && (error as? AMQPError)?.replyCode == 312
            }
            // The channel stays usable.
            let queue = TestBroker.uniqueQueue()
            try await channel.declareQueue(queue, durable: false, autoDelete: true)
            try await channel.publish([2], routingKey: queue, mandatory: true)
        }
    }

    /// RabbitMQ coalesces confirms, so the basic.ack after a basic.return
    /// may be a multiple one naming a later publish: among many concurrent
    /// publishes, exactly the unroutable ones must fail as returned.
    @Test func onlyUnroutablePublishesFailAsReturnedAmongConcurrentOnes() async throws {
        try await withChannel { _, channel in
            let queue = TestBroker.uniqueQueue()
            let missing = TestBroker.uniqueQueue("missing")
            try await channel.declareQueue(queue, durable: false, autoDelete: true)
            try await channel.enableConfirms(window: 64)
            let outcomes = try await withThrowingTaskGroup(of: (Bool, UInt16?).self) { group in
                for index in 0..<400 {
                    let routable = index % 3 != 0
                    group.addTask {
                        do {
                            try await channel.publish(
                                [UInt8(truncatingIfNeeded: index)], routingKey: routable ? queue : missing, mandatory: true)
                            return (routable, nil)
                        } catch let error as AMQPError where error.code == .publishReturned {
                            return (routable, error.replyCode)
                        }
                    }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            #expect(outcomes.filter { $0.0 }.allSatisfy { $0.1 == nil })
            #expect(outcomes.filter { !$0.0 }.allSatisfy { $0.1 == 312 })
            let info = try await channel.declareQueue(queue, passive: true)
            #expect(info.messageCount == UInt32(outcomes.filter { $0.0 }.count))
        }
    }

    /// A batch goes to the owner thread at once and through the confirm
    /// window in order: every message settled, the unroutable ones (and
    /// only they) returned, the others in the queue in the batch's order.
    @Test func aBatchIsPublishedInOrderAndEachOutcomeIsItsOwn() async throws {
        try await withChannel { _, channel in
            let queue = TestBroker.uniqueQueue()
            let missing = TestBroker.uniqueQueue("missing")
            try await channel.declareQueue(queue, durable: false, autoDelete: false)
            try await channel.enableConfirms(window: 64)
            let messages = (0..<600).map { index in
                AMQPOutgoingMessage(
                    Array("\(index)".utf8), routingKey: index % 7 == 3 ? missing : queue, mandatory: true)
            }
            let outcomes = try await channel.publish(batch: messages)
            #expect(outcomes.count == 600)
            for (index, outcome) in outcomes.enumerated() {
                switch outcome {
                case .success: #expect(index % 7 != 3, "message \(index) should have been returned")
                case .failure(let error):
                    #expect(index % 7 == 3, "message \(index): \(error)")
                    #expect(error.code == .publishReturned && error.replyCode == 312)
                }
            }
            // In order: the first routable messages come out first.
            for expected in (0..<20).filter({ $0 % 7 != 3 }) {
                let message = try await channel.get(queue: queue, noAck: true)
                #expect(message.map { String(decoding: $0.body, as: UTF8.self) } == "\(expected)")
            }
            let info = try await channel.declareQueue(queue, passive: true)
            #expect(info.messageCount == UInt32((20..<600).filter { $0 % 7 != 3 }.count))
            try await channel.deleteQueue(queue)
            // On a closed channel, a batch fails as a whole.
            await channel.close()
            await #expect(throws: AMQPError.self) {
                let outcomes = try await channel.publish(batch: [AMQPOutgoingMessage([1], routingKey: queue)])
                if case .failure(let error) = outcomes.first { throw error }
            }
        }
    }

    /// The publish that reports on the owner thread: each message's
    /// callback runs once, after its confirm (routed) or its return
    /// (unroutable), and a channel that closes fails the ones unconfirmed.
    @Test func aPublishWithACallbackIsSettledOnceByItsConfirmOrReturn() async throws {
        try await withChannel { connection, channel in
            let queue = TestBroker.uniqueQueue()
            let missing = TestBroker.uniqueQueue("missing")
            try await channel.declareQueue(queue, durable: false, autoDelete: false)
            try await channel.enableConfirms(window: 16)
            let outcomes = Mutex<[Int: [Result<Void, AMQPError>]]>([:])
            let (settled, settle) = AsyncStream.makeStream(of: Int.self)
            for index in 0..<200 {
                try channel.publish(Array("\(index)".utf8), routingKey: index % 5 == 2 ? missing : queue, mandatory: true) { result in
                    outcomes.withLock { $0[index, default: []].append(result) }
                    settle.yield(index)
                }
            }
            var count = 0
            for await _ in settled {
                count += 1
                if count == 200 { break }
            }
            let seen = outcomes.withLock { $0 }
            #expect(seen.count == 200)
            for (index, results) in seen {
                #expect(results.count == 1, "message \(index) settled \(results.count) times")
                switch results.first {
                case .success?: #expect(index % 5 != 2, "message \(index) should have been returned")
                case .failure(let error)?:
                    #expect(index % 5 == 2, "message \(index): \(error)")
                    #expect(error.code == .publishReturned && error.replyCode == 312)
                case nil: break
                }
            }
            // Confirmed means in the queue: the routable 160 are there.
            let info = try await channel.declareQueue(queue, passive: true)
            #expect(info.messageCount == 160)
            try await channel.deleteQueue(queue)
            // On a channel known to be closed: refused at once, no callback.
            await channel.close()
            #expect(throws: AMQPError.self) {
                try channel.publish([1], routingKey: queue) { _ in Issue.record("called for a refused publish") }
            }
            // On a closed connection, the same.
            let other = try await connection.openChannel()
            await connection.close()
            #expect(throws: AMQPError.self) {
                try other.publish([1], routingKey: queue) { _ in Issue.record("called for a refused publish") }
            }
        }
    }

    @Test func missingQueueClosesTheChannelWith404() async throws {
        try await withChannel { connection, channel in
            let missing = TestBroker.uniqueQueue("missing")
            await #expect {
                try await channel.declareQueue(missing, passive: true)
            } throws: { error in
                let error = error as? AMQPError
                return error?.code == .channelClosed && error?.replyCode == 404
                    && error?.replyText?.contains("NOT_FOUND") == true
            }
            // The channel is gone; the connection is not.
            await #expect(throws: AMQPError.self) { try await channel.setPrefetch(count: 1) }
            let next = try await connection.openChannel()
            await #expect {
                _ = try await next.consume(queue: missing)
            } throws: { ($0 as? AMQPError)?.replyCode == 404 }
            #expect(connection.isOpen)
        }
    }

    @Test func redeclaringWithOtherArgumentsSays406() async throws {
        try await withChannel { connection, channel in
            let queue = TestBroker.uniqueQueue()
            try await channel.declareQueue(queue, durable: false, autoDelete: true)
            let other = try await connection.openChannel()
            await #expect {
                try await other.declareQueue(queue, durable: false, autoDelete: true, arguments: ["x-max-priority": 5])
            } throws: { error in
                (error as? AMQPError)?.replyCode == 406
                    && (error as? AMQPError)?.replyText?.contains("PRECONDITION_FAILED") == true
            }
        }
    }

    @Test func ackAfterTheChannelClosedIsRefusedNotSent() async throws {
        try await withChannel { connection, channel in
            let queue = TestBroker.uniqueQueue()
            try await channel.declareQueue(queue, durable: false, autoDelete: false)
            try await channel.enableConfirms()
            try await channel.publish([7], routingKey: queue)
            let consuming = try await connection.openChannel()
            let delivery = try #require(try await consuming.get(queue: queue))
            await consuming.close()
            await #expect {
                try await delivery.ack()
            } throws: { ($0 as? AMQPError)?.code == .staleDeliveryTag }
            // Closing the channel returned the message to the queue.
            let again = try #require(try await channel.get(queue: queue, noAck: true))
            #expect(again.redelivered)
            #expect(again.body == [7])
            try await channel.deleteQueue(queue)
        }
    }

    @Test func overlongNamesAreRefusedBeforeReachingC() async throws {
        try await withChannel { connection, channel in
            let long = String(repeating: "q", count: 300)
            await #expect {
                try await channel.declareQueue(long)
            } throws: { ($0 as? AMQPError)?.code == .invalidArgument }
            await #expect {
                try await channel.publish([1], routingKey: "q", properties: AMQPProperties(correlationID: long))
            } throws: { ($0 as? AMQPError)?.code == .invalidArgument }
            await #expect {
                try await channel.publish([1], routingKey: "q", properties: AMQPProperties(expiration: "soon"))
            } throws: { ($0 as? AMQPError)?.code == .invalidArgument }
            #expect(connection.isOpen)
            try await channel.setPrefetch(count: 1)
        }
    }

    /// RabbitMQ closes the whole connection (541 INTERNAL_ERROR) on an
    /// infinite float in a table; refused before sending instead.
    @Test("Non-finite numbers in headers are refused, the connection stays usable", arguments: [
        AMQPFieldValue.double(.infinity), .double(.nan), .float(-.infinity),
        .array([.int32(1), .double(.infinity)]), .table(["inner": .double(.nan)]),
    ])
    func nonFiniteHeaderValuesAreRefused(_ value: AMQPFieldValue) async throws {
        try await withChannel { connection, channel in
            let queue = TestBroker.uniqueQueue()
            try await channel.declareQueue(queue, durable: false, autoDelete: true)
            try await channel.enableConfirms()
            await #expect {
                try await channel.publish([1], routingKey: queue, properties: AMQPProperties(headers: ["x-delay": value]))
            } throws: { ($0 as? AMQPError)?.code == .invalidArgument }
            try await channel.publish([2], routingKey: queue, properties: AMQPProperties(headers: ["x-delay": .double(1.5)]))
            #expect(connection.isOpen)
            let info = try await channel.declareQueue(queue, passive: true)
            #expect(info.messageCount == 1)
        }
    }

    @Test func heartbeatsKeepAnIdleConnectionAlive() async throws {
        var configuration = TestBroker.configuration
        configuration.heartbeat = .seconds(1)
        let connection = try await AMQPConnection.connect(configuration)
        // With a 1 s heartbeat the broker closes a silent peer after about
        // 2 s; this one must still work after 4 s of doing nothing.
        try await Task.sleep(for: .seconds(4))
        #expect(connection.isOpen)
        let channel = try await connection.openChannel()
        try await channel.setPrefetch(count: 1)
        await connection.close()
        #expect(!connection.isOpen)
        #expect(await connection.closed() == nil)
    }

    @Test func closedConnectionFailsOperationsCleanly() async throws {
        let connection = try await AMQPConnection.connect(TestBroker.configuration)
        let channel = try await connection.openChannel()
        await connection.close()
        await #expect(throws: AMQPError.self) { try await channel.publish([1], routingKey: "x") }
        await #expect(throws: AMQPError.self) { try await connection.openChannel() }
        await connection.close()
    }
}

/// Connection failures give clear errors within the connect timeout.
@Suite(.enabled(if: TestBroker.enabled, "no RabbitMQ reachable at QTASKS_URL"))
struct AMQPConnectFailureTests {
    @Test func wrongPasswordIs403AccessRefused() async throws {
        var configuration = TestBroker.configuration
        configuration.password = "definitely-wrong"
        await #expect {
            _ = try await AMQPConnection.connect(configuration)
        } throws: { error in
            let error = error as? AMQPError
            return error?.code == .authenticationFailed && error?.replyCode == 403
                && error?.replyText?.contains("ACCESS_REFUSED") == true
        }
    }

    @Test func missingVirtualHostIsRefused() async throws {
        var configuration = TestBroker.configuration
        configuration.virtualHost = "no-such-vhost"
        await #expect {
            _ = try await AMQPConnection.connect(configuration)
        } throws: { error in
            let error = error as? AMQPError
            return error?.code == .connectionFailed && error?.replyCode == 530
                && error?.replyText?.contains("NOT_ALLOWED") == true
        }
    }

    @Test func closedPortFailsFast() async throws {
        var configuration = TestBroker.configuration
        configuration.port = 1  // nothing listens on tcpmux
        let start = ContinuousClock.now
        await #expect {
            _ = try await AMQPConnection.connect(configuration)
        } throws: { error in
            let error = error as? AMQPError
            return error?.code == .connectionFailed && error?.message.contains("127.0.0.1:1") == true
        }
        #expect(ContinuousClock.now - start < configuration.connectTimeout + .seconds(1))
    }

    @Test func silentPeerTimesOutInsteadOfHanging() async throws {
        // A listening socket that never speaks AMQP.
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = 0
        inet_pton(AF_INET, "127.0.0.1", &address.sin_addr)
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer in
                bind(fd, pointer, length)
                listen(fd, 1)
                return getsockname(fd, pointer, &length)
            }
        }
        var configuration = AMQPConfiguration()
        configuration.port = Int(UInt16(bigEndian: address.sin_port))
        configuration.connectTimeout = .seconds(1)
        let start = ContinuousClock.now
        await #expect {
            _ = try await AMQPConnection.connect(configuration)
        } throws: { ($0 as? AMQPError)?.code == .connectionFailed }
        // Ended by the 1 s timeout, not a hang; loose for a loaded machine.
        #expect(ContinuousClock.now - start < .seconds(15))
    }
}
