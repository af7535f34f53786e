import ArgumentParser
import CommandSupport
import Foundation
import QTasks
import QTasksRabbitMQ
import RabbitMQManagement

/// `qtasks queues policy apply|show QUEUE...`: the policy that gives a
/// plain task queue its dead-letter route and delivery limit
/// (`TaskQueuePolicy`).
struct QueuePolicyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "policy",
        abstract: "Apply or show the RabbitMQ policy of task queues (dead-letter route, delivery limit).",
        discussion: """
            Each task queue QUEUE gets the policy qtasks.QUEUE, pattern ^QUEUE$ (that queue only), \
            apply-to queues, priority 10, definition {"dead-letter-exchange": "", \
            "dead-letter-routing-key": "QUEUE.dlq"}, plus "delivery-limit": N for a quorum queue: \
            RabbitMQ then dead-letters to QUEUE.dlq what it drops itself (a body over the worker's \
            broker-side limit, rejected unread; a quorum queue's message delivered N times \
            unsettled). The queue's type is the one it has when it exists, else --queue-type (or \
            QTASKS_QUEUE_TYPE), else the virtual host's default queue type; apply again after a \
            queue was re-created with another type. `apply` sets it through RabbitMQ's management API (the management user \
            needs the policymaker or administrator tag) and says whether it is in force on each queue \
            that exists; `show` prints the equivalent `rabbitmqctl set_policy` command for a broker \
            without the management plugin. A policy applies to queues declared later too.
            """,
        subcommands: [Apply.self, Show.self])

    /// What both subcommands take.
    struct Target: ParsableArguments {
        @OptionGroup var broker: BrokerOptions

        @Argument(help: "The task queues.")
        var queues: [String]

        /// `--queue-type` (else `QTASKS_QUEUE_TYPE`) and `--delivery-limit`,
        /// as the worker takes them.
        @OptionGroup var queueTypes: QueueTypeOptions

        @Option(help: "The policies' priority: the matching policy with the highest priority is the one RabbitMQ applies.")
        var priority: Int = TaskQueuePolicy.defaultPriority

        func validate() throws {
            guard !queues.isEmpty else { throw ValidationError("name at least one QUEUE") }
            for queue in queues {
                do {
                    try QueueNaming.validateTaskQueue(queue, what: "QUEUE")
                } catch let error as QueueNameError {
                    throw ValidationError(error.message)
                }
            }
        }

        /// `--queue-type` or `QTASKS_QUEUE_TYPE` when given; nil otherwise.
        var explicitQueueType: QueueType? {
            let environment = ProcessInfo.processInfo.environment["QTASKS_QUEUE_TYPE"].flatMap { $0.isEmpty ? nil : $0 }
            return (queueTypes.queueType ?? environment) == nil ? nil : QueueType(name: queueTypes.resolvedQueueType)
        }

        func policy(for queue: String, type: QueueType) -> TaskQueuePolicy {
            TaskQueuePolicy(
                queue: queue, queueType: type, deliveryLimit: queueTypes.deliveryLimit > 0 ? queueTypes.deliveryLimit : nil,
                priority: priority)
        }

        /// The virtual host of the broker URL (`/` for `%2F`).
        var virtualHost: String {
            (try? RabbitMQBrokerConfiguration(url: broker.resolvedURL))?.connection.virtualHost ?? "/"
        }
    }

    struct Apply: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Set the policies through RabbitMQ's management API and check them.",
            discussion: """
                Exit status 0 when every policy was set and is in force on its queue (a queue that \
                does not exist yet gets it when it is declared); 1 when a policy was set but another \
                one is in force on its queue (a higher priority); 4 when the management API could not \
                be reached or refused.
                """)

        @OptionGroup var target: Target

        @Option(help: "RabbitMQ management API base URL with credentials, http://user:pass@host:15672 (default: $QTASKS_MANAGEMENT_URL).")
        var managementURL: String?

        private var resolvedManagementURL: String? {
            managementURL ?? ProcessInfo.processInfo.environment["QTASKS_MANAGEMENT_URL"].flatMap { $0.isEmpty ? nil : $0 }
        }

        func validate() throws {
            guard let url = resolvedManagementURL else {
                throw ValidationError(
                    "--management-url (or QTASKS_MANAGEMENT_URL) is needed; without the management plugin, run what `qtasks queues policy show` prints")
            }
            do { _ = try RabbitMQManagementAPI(url: url) } catch {
                throw ValidationError("--management-url must be http(s)://user:pass@host:port")
            }
        }

        func run() async throws {
            // validate() has refused a missing or malformed URL.
            let api = try RabbitMQManagementAPI(url: resolvedManagementURL!)
            let virtualHost = target.virtualHost
            var failed = false
            var overruled = false
            for queue in target.queues {
                let policy: TaskQueuePolicy
                do {
                    policy = target.policy(for: queue, type: try await Self.queueType(of: queue, target: target, api: api))
                } catch {
                    printError("qtasks: \(TaskQueuePolicy.name(forQueue: queue)): \(error)")
                    failed = true
                    continue
                }
                do {
                    try await api.putPolicy(RabbitMQPolicy(policy), virtualHost: virtualHost)
                    let state = try await Self.state(of: policy, api: api, virtualHost: virtualHost)
                    print("\(policy.name)  \(policy.pattern)  \(policy.definitionJSON)  applied; \(state.text)")
                    if !state.inForce { overruled = true }
                } catch {
                    printError("qtasks: \(policy.name): \(error)")
                    failed = true
                }
            }
            fflush(nil)
            if failed { throw ExitStatus.brokerFailure }
            if overruled { throw ExitCode(1) }
        }

        /// The type the queue has, else will have: its type when it
        /// exists (a policy holding a key its type does not take is not
        /// applied at all), else `--queue-type`/`QTASKS_QUEUE_TYPE`, else
        /// the virtual host's default queue type, else classic.
        static func queueType(of queue: String, target: Target, api: RabbitMQManagementAPI) async throws -> QueueType {
            if let existing = try await api.queueDefinition(queue, virtualHost: target.virtualHost) {
                return existing.type.flatMap(QueueType.init(name:)) ?? .classic
            }
            if let explicit = target.explicitQueueType { return explicit }
            return try await api.defaultQueueType(virtualHost: target.virtualHost).flatMap(QueueType.init(name:)) ?? .classic
        }

        /// How long `apply` waits for the management API to report a
        /// policy on its queue: twice RabbitMQ's default statistics
        /// interval.
        static let checkTimeout = Duration.seconds(12)

        /// Whether the policy is in force on its queue, in words, and
        /// false when the queue exists and another policy is in force on it.
        static func state(of policy: TaskQueuePolicy, api: RabbitMQManagementAPI, virtualHost: String) async throws
            -> (text: String, inForce: Bool)
        {
            guard let queue = try await api.queueDefinition(policy.queue, virtualHost: virtualHost) else {
                return ("queue \(policy.queue) not declared yet (it gets the policy when it is)", true)
            }
            let type = queue.type ?? "classic"
            // The management API reports a queue's policy from its
            // statistics, refreshed every `collect_statistics_interval`
            // (5 s by default): a policy just set shows up to that late.
            var current = queue
            let deadline = ContinuousClock.now + checkTimeout
            while current.policy != policy.name || !policy.keysNotInForce(in: current.effectivePolicyDefinition.mapValues(JSONValue.init)).isEmpty,
                ContinuousClock.now < deadline
            {
                try await Task.sleep(for: .milliseconds(250))
                current = try await api.queueDefinition(policy.queue, virtualHost: virtualHost) ?? current
            }
            guard current.policy == policy.name else {
                return ("NOT in force on \(type) queue \(policy.queue) after \(checkTimeout): the management API reports policy \(current.policy ?? "none") (another with a higher priority?)", false)
            }
            let effective = current.effectivePolicyDefinition.mapValues(JSONValue.init)
            let missing = policy.keysNotInForce(in: effective)
            let overridden = ["dead-letter-exchange", "dead-letter-routing-key", "delivery-limit"].filter {
                current.arguments["x-" + $0] != nil
            }
            var text = missing.isEmpty ? "in force on \(type) queue \(policy.queue)" : "partly in force on \(type) queue \(policy.queue) (missing \(missing.joined(separator: ", ")))"
            if !overridden.isEmpty {
                text += "; its own arguments win for \(overridden.map { "x-" + $0 }.joined(separator: ", "))"
            }
            return (text, true)
        }
    }

    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print the rabbitmqctl commands that set the policies (no connection).",
            discussion: """
                Without a connection the queue's type is not known: give --queue-type quorum (or \
                QTASKS_QUEUE_TYPE=quorum) for quorum queues, whose policy carries the delivery limit; a \
                classic queue's must not (RabbitMQ would not apply it).
                """)

        @OptionGroup var target: Target

        func run() throws {
            for queue in target.queues {
                let policy = target.policy(for: queue, type: target.explicitQueueType ?? .classic)
                print((["rabbitmqctl"] + policy.rabbitmqctlArguments(virtualHost: target.virtualHost)).map(Self.shellQuoted).joined(separator: " "))
            }
        }

        /// POSIX shell quoting: as is when safe, else in single quotes.
        static func shellQuoted(_ word: String) -> String {
            let safe = CharacterSet(charactersIn: "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./=:,+@%")
            if !word.isEmpty && word.unicodeScalars.allSatisfy(safe.contains) { return word }
            return "'" + word.replacingOccurrences(of: "'", with: #"'\''"#) + "'"
        }
    }
}

extension RabbitMQPolicy {
    init(_ policy: TaskQueuePolicy) {
        self.init(
            name: policy.name, pattern: policy.pattern, applyTo: policy.applyTo, priority: policy.priority,
            definition: policy.definition.mapValues { value in
                switch value {
                case .string(let text): .string(text)
                case .int(let number): .integer(Int(number))
                case .bool(let flag): .boolean(flag)
                default: .other(value.description)
                }
            })
    }
}

extension JSONValue {
    /// A management API value as JSON.
    init(_ value: ManagementValue) {
        switch value {
        case .string(let text): self = .string(text)
        case .integer(let number): self = .int(Int64(number))
        case .boolean(let flag): self = .bool(flag)
        case .other(let text): self = (try? JSONDecoder().decode(JSONValue.self, from: Data(text.utf8))) ?? .string(text)
        }
    }
}
