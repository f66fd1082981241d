public import Hummingbird
public import Logging
import NIOCore
public import Observability

/// `GET /metrics`, `/health`, `/live` and `/ready`, on any Hummingbird router: the daemon's
/// own listener (`OperatorHTTP.application`) and `dealstream connect`'s webhook listener.
///
/// - `/metrics`: the Prometheus text exposition of `exposition`.
/// - `/health`: 200 whenever the listener answers, with the probe state as JSON (the
///   process is up; says nothing of its loop).
/// - `/live`: 200 while the loop answers (its own liveness stamp), else 503.
/// - `/ready`: 200 when restored, caught up and live, else 503.
public enum OperatorEndpoints {
    /// `health: false` leaves `/health` to the caller (connect has its own); `beforeProbe`
    /// runs before `/live` and `/ready` answer.
    public static func add<Context: RequestContext>(
        to router: Router<Context>,
        exposition: MetricsExposition,
        probe: ProbeState,
        health: Bool = true,
        beforeProbe: @escaping @Sendable () -> Void = {}
    ) {
        router.get("/metrics") { _, _ -> Response in
            var headers = HTTPFields()
            headers[.contentType] = MetricsExposition.contentType
            return Response(
                status: .ok,
                headers: headers,
                body: ResponseBody(byteBuffer: ByteBuffer(bytes: exposition.render()))
            )
        }
        if health { router.get("/health") { _, _ in json(.ok, probe.summary) } }
        router.get("/live") { _, _ in
            beforeProbe()
            return json(probe.isLive ? .ok : .serviceUnavailable, probe.summary)
        }
        router.get("/ready") { _, _ in
            beforeProbe()
            return json(probe.isReady ? .ok : .serviceUnavailable, probe.summary)
        }
    }

    static func json(_ status: HTTPResponse.Status, _ body: String) -> Response {
        var headers = HTTPFields()
        headers[.contentType] = "application/json"
        return Response(
            status: status,
            headers: headers,
            body: ResponseBody(byteBuffer: ByteBuffer(string: body + "\n"))
        )
    }
}

/// The daemon's HTTP listener (`http.listen`, `--http`): a Hummingbird `Application`, so
/// one more Service in the daemon's ServiceGroup, serving `OperatorEndpoints` only.
public enum OperatorHTTP {
    /// `onRunning` gets the bound port (useful with port 0).
    public static func application(
        host: String,
        port: Int,
        exposition: MetricsExposition,
        probe: ProbeState,
        logger: Logger,
        onRunning: @escaping @Sendable (Int) async -> Void = { _ in }
    )
        -> some ApplicationProtocol
    {
        let router = Router()
        OperatorEndpoints.add(to: router, exposition: exposition, probe: probe)
        return Application(
            router: router,
            configuration: .init(address: .hostname(host, port: port), serverName: "dealstream"),
            onServerRunning: { channel in await onRunning(channel.localAddress?.port ?? port) },
            logger: logger
        )
    }
}
