public import DealModel
import Foundation
public import Hummingbird
public import Logging
public import NIOCore
import ServiceLifecycle

/// A request context that keeps the connection's channel, so a browser that is dropped
/// for reading too slowly can have its connection closed from outside its handler.
public struct DashboardRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    public let channel: any Channel

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        channel = source.channel
    }
}

/// The dashboard's HTTP side (Hummingbird): the page and its assets, compiled into the
/// binary; `GET /events`, the server-sent event stream of the hub; `GET /health`.
///
/// Why read-only: the page is for people who watch; nothing here writes to the daemon
/// (the process holds only a SUB and a snapshot DEALER socket), and the server answers
/// only GET and HEAD. Every response carries a strict Content-Security-Policy (scripts
/// and styles from this origin only), so a label that slipped through unescaped could
/// still not run.
public enum DashboardServer {
    /// Page settings served as `/config.json`: the reporting currency and each pipeline's stages.
    public struct PageSettings: Sendable {
        public var currency: String?
        public var pipelines: [(name: String, stages: [String])]

        public init(model: Model?) {
            currency = model?.reportingCurrency
            pipelines = model?.pipelines.map { ($0.name, $0.stages) } ?? []
        }

        var json: String {
            var out: [UInt8] = Array("{\"currency\":".utf8)
            if let currency { JSONWriter.appendString(currency, to: &out) } else { out += Array("null".utf8) }
            out += Array(",\"pipelines\":{".utf8)
            for (index, pipeline) in pipelines.enumerated() {
                if index > 0 { out.append(UInt8(ascii: ",")) }
                JSONWriter.appendString(pipeline.name, to: &out)
                out += Array(":[".utf8)
                for (i, stage) in pipeline.stages.enumerated() {
                    if i > 0 { out.append(UInt8(ascii: ",")) }
                    JSONWriter.appendString(stage, to: &out)
                }
                out.append(UInt8(ascii: "]"))
            }
            out += Array("}}".utf8)
            return String(decoding: out, as: UTF8.self)
        }
    }

    /// Options of the event stream.
    public struct StreamOptions: Sendable {
        /// A browser is written to at most once per this many milliseconds (changes in between coalesce).
        public var pushIntervalMilliseconds = 50
        public init() {}
    }

    static let assets: [String: (type: String, bytes: [UInt8])] = [
        "/": ("text/html; charset=utf-8", PackageResources.index_html),
        "/index.html": ("text/html; charset=utf-8", PackageResources.index_html),
        "/app.js": ("text/javascript; charset=utf-8", PackageResources.app_js),
        "/app.css": ("text/css; charset=utf-8", PackageResources.app_css),
        "/favicon.svg": ("image/svg+xml", PackageResources.favicon_svg),
    ]

    /// The application; `onRunning` gets the bound port (useful with port 0).
    public static func application(
        hub: DashboardHub,
        settings: PageSettings,
        credentials: BasicAuthCredentials?,
        host: String,
        port: Int,
        options: StreamOptions = .init(),
        logger: Logger,
        onRunning: @escaping @Sendable (Int) async -> Void = { _ in }
    )
        -> some ApplicationProtocol
    {
        let router = Router(context: DashboardRequestContext.self)
        router.add(middleware: GuardMiddleware(credentials: credentials))
        for (path, asset) in assets {
            let body = ByteBuffer(bytes: asset.bytes)
            router.get(RouterPath(path)) { _, _ -> Response in
                var headers = HTTPFields()
                headers[.contentType] = asset.type
                return Response(status: .ok, headers: headers, body: ResponseBody(byteBuffer: body))
            }
        }
        let settingsJSON = ByteBuffer(string: settings.json)
        router.get("/config.json") { _, _ -> Response in
            var headers = HTTPFields()
            headers[.contentType] = "application/json"
            return Response(status: .ok, headers: headers, body: ResponseBody(byteBuffer: settingsJSON))
        }
        router.get("/health") { _, _ -> Response in
            let s = hub.statistics
            let body =
                "{\"series\":\(s.series),\"clients\":\(s.clients),\"clients_dropped\":\(s.clientsDropped),"
                + "\"snapshots\":\(s.snapshots),\"rounds\":\(s.rounds),\"seq\":\(s.position.seq),"
                + "\"log_seq\":\(s.position.logSeq),\"connected\":\(s.position.connected)}\n"
            var headers = HTTPFields()
            headers[.contentType] = "application/json"
            return Response(status: .ok, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(string: body)))
        }
        router.get("/events") { _, context -> Response in
            let channel = context.channel
            var headers = HTTPFields()
            headers[.contentType] = "text/event-stream"
            headers[.cacheControl] = "no-store"
            return Response(
                status: .ok,
                headers: headers,
                body: ResponseBody { writer in
                    try await stream(hub: hub, channel: channel, options: options, to: &writer)
                }
            )
        }
        return Application(
            router: router,
            configuration: .init(address: .hostname(host, port: port), serverName: "dealstream-web"),
            onServerRunning: { channel in await onRunning(channel.localAddress?.port ?? port) },
            logger: logger
        )
    }

    /// One browser's event stream: the full state, then every round's changes, coalesced
    /// per series while the browser is being written to.
    static func stream(
        hub: DashboardHub,
        channel: any Channel,
        options: StreamOptions,
        to writer: inout any ResponseBodyWriter
    ) async throws {
        let (id, wakes) = hub.register(close: { channel.close(promise: nil) }, congested: { !channel.isWritable })
        defer { hub.unregister(id) }
        try await writer.write(ByteBuffer(string: "retry: 1000\n\n"))
        let interval = Duration.milliseconds(options.pushIntervalMilliseconds)
        let clock = ContinuousClock()
        var lastWrite = clock.now - interval
        for await _ in wakes {
            let due = lastWrite + interval
            if clock.now < due { try await Task.sleep(until: due, clock: clock) }
            while let drained = hub.drain(id), !drained.bytes.isEmpty {
                hub.writing(id, true)
                try await writer.write(ByteBuffer(bytes: drained.bytes))
                hub.writing(id, false)
                lastWrite = clock.now
                if drained.complete { break }
            }
        }
        // Shutting down (the hub finished every stream): end the response so the server can stop.
        // A dropped browser's channel is closed already; finishing it then fails harmlessly.
        try await writer.finish(nil)
    }
}

/// Basic auth (when configured), GET/HEAD only, and the security headers on every answer.
struct GuardMiddleware: RouterMiddleware {
    typealias Context = DashboardRequestContext
    let credentials: BasicAuthCredentials?

    func handle(
        _ request: Request,
        context: Context,
        next: (Request, Context) async throws -> Response
    ) async throws
        -> Response
    {
        var response: Response
        if let credentials, !credentials.admits(request.headers[.authorization]) {
            response = Response(
                status: .unauthorized,
                body: ResponseBody(byteBuffer: ByteBuffer(string: "authentication required\n"))
            )
            response.headers[.wwwAuthenticate] = "Basic realm=\"dealstream\", charset=\"UTF-8\""
        } else if request.method != .get && request.method != .head {
            response = Response(
                status: .methodNotAllowed,
                body: ResponseBody(byteBuffer: ByteBuffer(string: "read-only\n"))
            )
            response.headers[.allow] = "GET, HEAD"
        } else {
            response = try await next(request, context)
        }
        response.headers[.contentSecurityPolicy] =
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
            + "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
        response.headers[.xContentTypeOptions] = "nosniff"
        response.headers[.init("Referrer-Policy")!] = "no-referrer"
        if response.headers[.cacheControl] == nil { response.headers[.cacheControl] = "no-cache" }
        return response
    }
}
