import CRMWebhooks
import Foundation
import Hummingbird
import Logging
import NIOCore
import OperatorHTTP

/// The HTTP side of a connector: Hummingbird serving `POST /webhooks/<vendor>` (and
/// `GET /health`), handing each request to the `WebhookProcessor`.
///
/// Why Hummingbird: a maintained HTTP/1.1 server on SwiftNIO; the connector parses no
/// HTTP itself. The body is read whole (up to `maximumBodyBytes`) because signatures
/// cover the exact bytes.
public enum WebhookServer {
    public static let maximumBodyBytes = 8 << 20

    /// The application; `onRunning` gets the bound port (useful with port 0). `GET /health`
    /// answers `{"spool_pending":…,"forwarded":…,"log_seq":…}` from `forwarder`.
    public static func application(processor: WebhookProcessor, forwarder: Forwarder, host: String, port: Int, publicURL: String?,
                                   logger: Logger, metrics: ConnectMetrics? = nil,
                                   onRunning: @escaping @Sendable (Int) async -> Void = { _ in })
        -> some ApplicationProtocol
    {
        let router = Router()
        if let metrics {
            OperatorEndpoints.add(to: router, exposition: metrics.exposition, probe: metrics.probe, health: false,
                                  beforeProbe: metrics.refresh)
        }
        let path = "/webhooks/\(processor.vendor.rawValue)"
        router.get("/health") { _, _ in
            let progress = forwarder.progress
            return "{\"spool_pending\":\(processor.spool.pendingCount),\"forwarded\":\(progress.forwarded),\"log_seq\":\(progress.lastLogSeq)}"
        }
        router.post(RouterPath(path)) { request, _ -> Response in
            let buffer = try await request.body.collect(upTo: maximumBodyBytes)
            var headers: [String: String] = [:]
            for field in request.headers { headers[field.name.canonicalName] = field.value }
            let base = publicURL ?? "http://\(request.head.authority ?? headers["host"] ?? "\(host):\(port)")"
            let answer = await processor.handle(WebhookRequest(
                method: request.method.rawValue, url: base + request.uri.string, headers: headers,
                body: Array(buffer.readableBytesView)))
            metrics?.answered(answer.status)
            var responseHeaders = HTTPFields()
            responseHeaders[.contentType] = "application/json"
            return Response(status: HTTPResponse.Status(code: answer.status), headers: responseHeaders,
                            body: ResponseBody(byteBuffer: ByteBuffer(string: answer.body + "\n")))
        }
        return Application(router: router, configuration: .init(address: .hostname(host, port: port), serverName: "dealstream-connect"),
                           onServerRunning: { channel in await onRunning(channel.localAddress?.port ?? port) }, logger: logger)
    }
}
