import CRMWebhooks
import DealModel
import Foundation
public import Hummingbird
public import Logging
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

    /// What a slow or hostile client may hold of the server.
    ///
    /// Why: without limits, connections that send their headers at a byte a second, or
    /// declare a large body and send three bytes of it, are held forever, and enough of
    /// them exhaust the process. The header timeout is Hummingbird's idle timeout (a
    /// request's head must be complete that long after the connection opened or the last
    /// answer; it also closes idle keep-alive connections); the body must arrive whole
    /// within the body timeout (else 408 and the connection is closed); beyond
    /// `maximumConnections` open connections new ones wait in the listen backlog.
    public struct Limits: Sendable {
        public var headerTimeout: Duration = .seconds(10)
        public var bodyTimeout: Duration = .seconds(5)
        public var maximumConnections = 256
        public init() {}
    }

    /// The application; `onRunning` gets the bound port (useful with port 0). `GET /health`
    /// answers `{"spool_pending":…,"forwarded":…,"log_seq":…}` from `forwarder`.
    public static func application(
        processor: WebhookProcessor,
        forwarder: Forwarder,
        host: String,
        port: Int,
        publicURL: String?,
        limits: Limits = Limits(),
        logger: Logger,
        metrics: ConnectMetrics? = nil,
        onRunning: @escaping @Sendable (Int) async -> Void = { _ in }
    )
        -> some ApplicationProtocol
    {
        let router = Router()
        if let metrics {
            OperatorEndpoints.add(
                to: router,
                exposition: metrics.exposition,
                probe: metrics.probe,
                health: false,
                beforeProbe: metrics.refresh
            )
        }
        let path = "/webhooks/\(processor.vendor.rawValue)"
        router.get("/health") { _, _ in
            let progress = forwarder.progress
            return
                "{\"spool_pending\":\(processor.spool.pendingCount),\"forwarded\":\(progress.forwarded),\"log_seq\":\(progress.lastLogSeq)}"
        }
        router.post(RouterPath(path)) { request, _ -> Response in
            var responseHeaders = HTTPFields()
            responseHeaders[.contentType] = "application/json"
            let body: [UInt8]
            do {
                body = try await collect(request.body, within: limits.bodyTimeout)
            } catch is BodyTimeout {
                logger.warning("Webhook body not received in time", metadata: ["webhook.vendor": "\(processor.vendor)"])
                responseHeaders[.connection] = "close"
                let reason = WebhookProcessor.json([
                    "error": .string("request body not received within \(limits.bodyTimeout)")
                ])
                return Response(
                    status: .requestTimeout,
                    headers: responseHeaders,
                    body: ResponseBody(byteBuffer: ByteBuffer(string: reason + "\n"))
                )
            }
            var headers: [(name: String, value: String)] = []
            for field in request.headers { headers.append((field.name.canonicalName, field.value)) }
            let answer = await processor.handle(
                WebhookRequest(
                    method: request.method.rawValue,
                    authority: request.head.authority,
                    path: request.uri.string,
                    headers: headers,
                    body: body,
                    publicURL: publicURL,
                    listenAddress: "\(host):\(port)"
                )
            )
            metrics?.answered(answer.status)
            return Response(
                status: HTTPResponse.Status(code: answer.status),
                headers: responseHeaders,
                body: ResponseBody(byteBuffer: ByteBuffer(string: answer.body + "\n"))
            )
        }
        let configuration = ApplicationConfiguration(
            address: .hostname(host, port: port),
            serverName: "dealstream-connect",
            availableConnectionsDelegate: .maximum(limits.maximumConnections, logger: logger)
        )
        return Application(
            router: router,
            server: .http1(configuration: .init(idleTimeout: TimeAmount(limits.headerTimeout))),
            configuration: configuration,
            services: [forwarder],
            onServerRunning: { channel in await onRunning(channel.localAddress?.port ?? port) },
            logger: logger
        )
    }

    struct BodyTimeout: Error {}

    /// The whole request body (up to `maximumBodyBytes`), or `BodyTimeout` when it has not
    /// all arrived within `timeout`.
    static func collect(_ body: RequestBody, within timeout: Duration) async throws -> [UInt8] {
        try await withThrowingTaskGroup(of: [UInt8]?.self) { group in
            group.addTask { Array(try await body.collect(upTo: maximumBodyBytes).readableBytesView) }
            group.addTask {
                try await Task.sleep(for: timeout)
                return nil
            }
            defer { group.cancelAll() }
            guard let first = try await group.next(), let bytes = first else { throw BodyTimeout() }
            return bytes
        }
    }
}
