import ArgumentParser

/// `qtasks`: the command-line tool for a swift-qtasks deployment.
@main
struct QTasksCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "qtasks",
        abstract: "Send tasks to swift-qtasks workers over RabbitMQ and read their results.",
        discussion: """
            Every command reads the broker URL from --url, else the QTASKS_URL environment variable, \
            else amqp://guest:guest@127.0.0.1:5672/%2F (RabbitMQ's URI format: the default vhost / is \
            written %2F). `qtasks state` reads a State backend URL instead (--state, QTASKS_STATE_URL).

            Exit status: 0 success; 1 the task's result was an error or a cancel (with --count: \
            any of them), or a purge was not confirmed; 2 `state get` found no such field; 3 no \
            result within --wait seconds; 4 the broker (or State backend) could \
            not be reached or refused the request; 64 bad usage.
            """,
        subcommands: [SendCommand.self, InspectCommand.self, PurgeCommand.self, DLQCommand.self, StateCommand.self])
}

/// The exit statuses of `qtasks`, documented in its help.
enum ExitStatus {
    static let taskFailed = ExitCode(1)
    static let timeout = ExitCode(3)
    static let brokerFailure = ExitCode(4)
    static let usage = ExitCode(64)
}
