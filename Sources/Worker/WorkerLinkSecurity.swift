import Logging
import Synchronization
public import ZeroMQ

/// What a worker needs to join a daemon whose worker endpoint has CURVE on
/// (`workers.curve`): the daemon's worker-link public key and this worker's key pair.
///
/// Why a type of its own: the worker's options carry it from `dealstream worker`
/// (`--curve-server-key`, `--curve-secret-key-file` or, for a worker the daemon spawned,
/// `DEALSTREAM_WORKER_SECRET_KEY`) to the socket thread, and the keys differ from a
/// connector's (`CurveClientKeys` on ingest): a connector's key is refused here.
public struct WorkerLinkCurve: Sendable {
    /// The daemon's worker-link public key and this worker's key pair.
    public var keys: CurveClientKeys

    public init(keys: CurveClientKeys) {
        self.keys = keys
    }
}

/// Sets up a worker's DEALER for the worker link before it connects.
///
/// With `WorkerLinkCurve`, the socket is a CURVE client of the daemon. Either way, a
/// handshake the daemon refuses is logged on the worker's side with what to fix (the
/// socket itself only goes silent: a refused worker would otherwise wait out its
/// liveness without a word); the daemon logs its side (`Worker handshake refused`).
enum WorkerLinkSecurity {
    /// One call from the session, between making the DEALER and connecting it.
    ///
    /// Also bounds a blocking send to 100 ms: after a refused handshake libzmq drops the
    /// connection for good, and a DEALER with no connection blocks in send forever, which
    /// would hang the session (and SIGTERM with it) instead of letting it time out and
    /// reconnect. While connected, a send never blocks (no high-water mark).
    static func prepare(_ socket: ZMQSocket, options: MetricWorker.Options, logger: Logger) throws {
        try socket.set(.sendTimeout, 100)
        if let curve = options.curve { try socket.setCurveClient(curve.keys) }
        let publicKey = options.curve?.keys.keyPair.publicKey
        let endpoint = options.endpoint
        // A dropped handshake repeats every reconnect (100 ms): said once per session.
        let incompleteSaid = Atomic<Bool>(false)
        try socket.reportHandshakeFailures(named: "ds-worker-auth") { failure in
            if case .incomplete = failure.kind, incompleteSaid.exchange(true, ordering: .relaxed) { return }
            logger.error(
                "Worker link refused by the daemon",
                metadata: [
                    "endpoint.workers": "\(endpoint)", "worker.key": "\(publicKey.map { $0.z85 } ?? "none")",
                    "reason": "\(reason(failure, publicKey: publicKey))",
                ]
            )
        }
    }

    /// What went wrong, and what to do about it.
    static func reason(_ failure: ZMQHandshakeFailure, publicKey: CurveKey?) -> String {
        switch failure.kind {
        case .authentication(let status):
            return "this worker's CURVE public key is not in the daemon's workers.curve.workers (ZAP status \(status))"
        case .protocolError where failure.isMechanismMismatch && publicKey == nil:
            return "the daemon's worker endpoint requires CURVE: give --curve-server-key and --curve-secret-key-file"
        case .protocolError where failure.isMechanismMismatch:
            return "the daemon's worker endpoint has no CURVE (workers.curve is off): leave out the --curve-* options"
        case .protocolError:
            return "\(failure)"
        case .incomplete where publicKey == nil:
            return "the daemon closed the connection during the handshake: "
                + "if its worker endpoint requires CURVE (workers.curve), give --curve-server-key and --curve-secret-key-file"
        case .incomplete:
            return "the daemon closed the connection during the handshake: "
                + "check --curve-server-key (the daemon's worker-link public key) and that workers.curve is on"
        }
    }
}
