import ArgumentParser
import QTasks

/// `qtasks`: the command-line tool for a swift-qtasks deployment.
@main
struct QTasksCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "qtasks",
        abstract: "Send tasks to swift-qtasks workers over RabbitMQ and read their results.",
        discussion: """
            Every command that talks to the broker reads its URL from --url, else the QTASKS_URL \
            environment variable, else amqp://guest:guest@127.0.0.1:5672/%2F (RabbitMQ's URI format: \
            the default vhost / is written %2F; a URL that is not exactly amqp[s]://... is refused with \
            64, as are out-of-range numbers and queue names: see docs/operations.md). `qtasks state` reads a State backend URL instead \
            (--state, QTASKS_STATE_URL); `result`, `tasks` and `workers` read a result store \
            (--result-store, QTASKS_RESULT_STORE), which workers write with --result-store.

            Exit status: 0 success; 1 the task's result was an error or a cancel (with --count: \
            any of them), or a purge was not confirmed; 2 `state get` found no such field, or \
            `result` no such task; 3 no result within --wait seconds (`result`: the task has not \
            ended); 4 the broker (or State backend, or result store) could not be reached or \
            refused the request (`dlq` and `purge` of a queue that does not exist: 404); 64 bad usage.
            """,
        subcommands: [
            SendCommand.self, ResultCommand.self, TasksCommand.self, WorkersCommand.self, EventsCommand.self,
            InspectCommand.self, PurgeCommand.self, DLQCommand.self, QueuesCommand.self, StateCommand.self, DashboardCommand.self,
            WorkflowCommand.self,
        ])
}

/// The exit statuses of `qtasks`, documented in its help.
enum ExitStatus {
    /// The task's result was an error or a cancel.
    static let taskFailed = ExitCode(1)
    /// What was asked for does not exist: `state get`'s field, `result`'s
    /// record.
    static let notFound = ExitCode(2)
    /// The task did not end within the wait.
    static let timeout = ExitCode(3)
    /// The broker, the State backend or the result store could not be
    /// reached or refused the request.
    static let brokerFailure = ExitCode(4)
    static let usage = ExitCode(64)

    /// How `qtasks send` and `qtasks result` exit for a task's status: nil
    /// (0) for success, ``timeout`` for a task that has not ended (`new`,
    /// `process`, `retry`), ``taskFailed`` for any other end (error,
    /// cancel, a status of another producer).
    static func forTask(_ status: TaskStatus) -> ExitCode? {
        switch status {
        case .success: nil
        case .new, .process, .retry: timeout
        default: taskFailed
        }
    }
}
