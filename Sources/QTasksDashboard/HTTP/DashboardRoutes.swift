import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import QTasks
import ServiceLifecycle

/// The HTTP side of docs/dashboard.md ("JSON API"): pages, assets, JSON, and the
/// server-sent live updates.
struct DashboardRoutes: Sendable {
    let api: DashboardAPI
    let configuration: DashboardConfiguration
    /// `""` or `/prefix`, written into the page for its links.
    let base: String

    /// The page paths: each serves index.html, whose script renders the
    /// view from the URL.
    static let pages = [
        "", "workers", "tasks", "tasks/:uuid", "dead-letters", "dead-letters/:queue", "workflows", "workflows/:id", "schedules", "state",
        "state/**",
    ]

    func add<Context: RequestContext>(to group: RouterGroup<Context>) {
        let index = Assets.index(base: base)
        for page in Self.pages {
            group.get(RouterPath(page)) { _, _ in Self.asset(index, type: "text/html; charset=utf-8") }
        }
        group.get("assets/app.js") { _, _ in Self.asset(Assets.script, type: "text/javascript; charset=utf-8") }
        group.get("assets/app.css") { _, _ in Self.asset(Assets.styles, type: "text/css; charset=utf-8") }

        group.get("api/overview") { _, _ in await Self.json { await api.overview() } }
        group.get("api/workers") { _, _ in await Self.json { try await api.workerList() } }
        group.get("api/tasks") { request, _ in await Self.json { try await api.tasks(Self.query(request)) } }
        group.get("api/tasks/:uuid") { _, context in
            await Self.json { try await api.task(try Self.parameter("uuid", context)) }
        }
        group.get("api/dead-letters") { _, _ in await Self.json { try await api.deadLetterQueues() } }
        group.get("api/dead-letters/:queue") { request, context in
            await Self.json {
                let limit = try Self.query(request)["limit"]?.last.map { text -> Int in
                    guard let value = Int(text) else { throw APIError.badRequest("limit must be a number") }
                    return value
                }
                return try await api.deadLetters(try Self.parameter("queue", context), limit: limit ?? 50)
            }
        }
        group.post("api/dead-letters/:queue/replay") { request, context in
            await Self.json {
                let body = try await Self.body(request)
                // {} replays all; {"uuid": "…"} one; anything else is refused,
                // never read as "all".
                var uuid: String?
                if let value = body["uuid"] {
                    guard case .string(let text) = value, !text.isEmpty else {
                        throw APIError.badRequest("uuid must be a non-empty string (or absent, to replay all)")
                    }
                    uuid = text
                }
                guard body.keys.allSatisfy({ $0 == "uuid" }) else {
                    throw APIError.badRequest("unknown fields: \(body.keys.filter { $0 != "uuid" }.sorted().joined(separator: ", "))")
                }
                return try await api.replay(try Self.parameter("queue", context), uuid: uuid)
            }
        }
        group.post("api/dead-letters/:queue/purge") { request, context in
            await Self.json {
                let body = try await Self.body(request)
                let confirm: String? = if case .string(let text)? = body["confirm"] { text } else { nil }
                return try await api.purge(try Self.parameter("queue", context), confirm: confirm)
            }
        }
        group.get("api/workflows") { request, _ in await Self.json { try await api.workflows(Self.query(request)) } }
        group.get("api/workflows/:id") { request, context in
            await Self.json {
                let members = try Self.query(request)["members"]?.last.flatMap { $0.isEmpty ? nil : $0 }.map { text -> Int in
                    guard let value = Int(text) else { throw APIError.badRequest("members must be a whole number") }
                    return value
                }
                return try await api.workflow(try Self.parameter("id", context), members: members ?? 50)
            }
        }
        group.get("api/schedules") { _, _ in await Self.json { try await api.schedules() } }
        group.get("api/state") { _, _ in await Self.json { try await api.stateNamespaces() } }
        group.get("api/state/:namespace") { request, context in
            await Self.json {
                let namespace = try Self.parameter("namespace", context)
                // The namespace's keyless state (StateID(namespace:)).
                if let keyless = Self.query(request)["keyless"]?.last, keyless == "1" || keyless == "true" { return try await api.stateFields(namespace: namespace, key: nil) }
                return try await api.stateKeys(in: namespace)
            }
        }
        group.get("api/state/:namespace/:key") { _, context in
            await Self.json {
                try await api.stateFields(
                    namespace: try Self.parameter("namespace", context), key: try Self.parameter("key", context))
            }
        }
        group.get("api/live") { _, _ in await live() }
        group.get("api/**") { _, _ in Self.error(APIError.notFound("no such API endpoint")) }
    }

    // MARK: Live

    /// `text/event-stream` of the feed's updates until the client leaves
    /// or the dashboard stops.
    private func live() async -> Response {
        guard let subscription = await api.feed.subscribe(limit: configuration.maxLiveStreams) else {
            return Self.error(APIError.unavailable("too many live streams open (\(configuration.maxLiveStreams))"))
        }
        let feed = api.feed
        var headers: HTTPFields = [.contentType: "text/event-stream", .cacheControl: "no-cache"]
        headers[HTTPField.Name("X-Accel-Buffering")!] = "no"
        return Response(
            status: .ok, headers: headers,
            body: ResponseBody { writer in
                do {
                    // The browser waits this long before reconnecting.
                    try await writer.write(ByteBuffer(string: "retry: 3000\n: connected\n\n"))
                    // The server waits for open responses when it stops: end
                    // the stream at graceful shutdown, or an open page would
                    // keep the process alive (the browser reconnects).
                    try await withGracefulShutdownHandler {
                        for await update in subscription.updates {
                            try await writer.write(ByteBuffer(string: "event: update\ndata: \(update)\n\n"))
                        }
                    } onGracefulShutdown: {
                        Task { await feed.unsubscribe(subscription.id) }
                    }
                    await feed.unsubscribe(subscription.id)
                    try await writer.finish(nil)
                } catch {
                    // The client went away.
                    await feed.unsubscribe(subscription.id)
                    throw error
                }
            })
    }

    // MARK: Helpers

    /// A path parameter, percent-decoded (the router matches the raw
    /// segment: a `/` in a State key or queue name arrives as `%2F`).
    static func parameter<Context: RequestContext>(_ name: String, _ context: Context) throws -> String {
        let raw = try context.parameters.require(name)
        return raw.removingPercentEncoding ?? raw
    }

    static func asset(_ bytes: [UInt8], type: String) -> Response {
        Response(
            status: .ok, headers: [.contentType: type, .cacheControl: "no-cache"],
            body: ResponseBody(byteBuffer: ByteBuffer(bytes: bytes)))
    }

    static func json(_ body: () async throws -> JSONValue) async -> Response {
        do {
            let value = try await body()
            return Response(
                status: .ok, headers: [.contentType: "application/json; charset=utf-8", .cacheControl: "no-store"],
                body: ResponseBody(byteBuffer: ByteBuffer(string: value.description)))
        } catch let error as APIError {
            return Self.error(error)
        } catch let error as HTTPError {
            return Self.error(APIError(status: Int(error.status.code), message: error.body ?? "\(error.status)"))
        } catch {
            return Self.error(APIError.unavailable("\(error)"))
        }
    }

    static func error(_ error: APIError) -> Response {
        Response(
            status: HTTPResponse.Status(code: error.status),
            headers: [.contentType: "application/json; charset=utf-8", .cacheControl: "no-store"],
            body: ResponseBody(byteBuffer: ByteBuffer(string: JSONValue.object(["error": .string(error.message)]).description)))
    }

    /// The query string as a form decodes it (`+` is a space), every value
    /// of a repeated key kept.
    static func query(_ request: Request) -> [String: [String]] {
        var parameters: [String: [String]] = [:]
        for pair in (request.uri.query ?? "").split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            func decode(_ text: Substring) -> String {
                let spaced = text.replacingOccurrences(of: "+", with: " ")
                return spaced.removingPercentEncoding ?? spaced
            }
            parameters[decode(parts[0]), default: []].append(parts.count > 1 ? decode(parts[1]) : "")
        }
        return parameters
    }

    /// A JSON object body (empty: `{}`), at most 64 KiB.
    static func body(_ request: Request) async throws -> [String: JSONValue] {
        let buffer: ByteBuffer
        do {
            buffer = try await request.body.collect(upTo: 64 * 1024)
        } catch is NIOTooManyBytesError {
            throw APIError(status: 413, message: "the body is larger than 64 KiB")
        }
        let bytes = Array(buffer.readableBytesView)
        if bytes.allSatisfy({ $0 == 0x20 || $0 == 0x0A || $0 == 0x0D || $0 == 0x09 }) { return [:] }
        guard case .object(let object) = try? JSONParser.parse(bytes) else {
            throw APIError.badRequest("the body must be a JSON object")
        }
        return object
    }
}
