import Foundation
import QTasks
import QTasksRabbitMQ

/// A message of the events exchange as one line of `qtasks events`.
enum EventText {
    /// `2025-06-01 12:00:01.250Z task.succeeded.add 9b1… attempt=1 worker=host.42.ab12 duration=0.002 s result=5`;
    /// a heartbeat: `… worker.heartbeat host.42.ab12 queues=default in_flight=0 processed=12 failed=1`;
    /// a body that does not parse: the routing key and the body as it came.
    static func line(_ message: EventsExchange.Message) -> String {
        let decoder = JSONDecoder()
        let body = Data(message.body)
        if message.routingKey.hasPrefix("task."), let event = try? decoder.decode(TaskEvent.self, from: body) {
            return line(event, routingKey: message.routingKey)
        }
        if message.routingKey.hasPrefix("worker."), let heartbeat = try? decoder.decode(WorkerHeartbeat.self, from: body) {
            return [
                TimeText.utc(heartbeat.sentAt), message.routingKey, heartbeat.workerID,
                "queues=\(heartbeat.queues.joined(separator: ","))", "in_flight=\(heartbeat.inFlight)",
                "processed=\(heartbeat.processed)", "failed=\(heartbeat.failed)",
            ].joined(separator: " ")
        }
        return "\(message.routingKey) \(String(decoding: message.body, as: UTF8.self))"
    }

    static func line(_ event: TaskEvent, routingKey: String) -> String {
        var parts = [
            TimeText.utc(event.timestamp), routingKey, event.uuid, "attempt=\(event.attempt)", "worker=\(event.workerID)",
        ]
        if let duration = event.duration { parts.append("duration=\(TimeText.seconds(duration))") }
        if let arguments = event.arguments { parts.append("arguments=\(RecordText.arguments(arguments))") }
        if let result = event.result { parts.append("result=\(result)") }
        if let failure = event.failure { parts.append("error=\(failure.type): \(failure.message.replacingOccurrences(of: "\n", with: " "))") }
        if let retryDelay = event.retryDelay { parts.append("retry_in=\(TimeText.seconds(retryDelay))") }
        if let deadLetterQueue = event.deadLetterQueue { parts.append("dead_letter_queue=\(deadLetterQueue)") }
        return parts.joined(separator: " ")
    }
}
