import Clients
import DealModel
import Foundation
public import Logging
public import ServiceLifecycle
import Synchronization
import Wire
public import ZeroMQ

/// How the forwarder reaches the daemon's ingest endpoint.
///
/// Why a struct: the ZeroMQ client options (endpoint, batching, CURVE keys) arrive here
/// and in `IngestClient` without touching the forwarder's loop.
public struct ForwarderOptions: Sendable {
    public var endpoint: String
    /// Events per `EVENTS` request.
    public var batchSize: Int = 1000
    /// Milliseconds to wait for an ACK before resending (`IngestClient`).
    public var timeoutMilliseconds: Int = 5000
    /// Resends of one request before the daemon counts as down.
    public var retries: Int = 2
    /// CURVE keys, when the daemon's ingest endpoint has `ingest.curve` on.
    public var curve: CurveClientKeys?
    public init(endpoint: String) { self.endpoint = endpoint }
}

/// Drains the `Spool` into the daemon, in order, with the existing `IngestClient`.
///
/// Why: the webhook answer must not wait for the daemon, and events must not be lost
/// while it is down. Each batch is removed from the spool only after its ACK (so after
/// the daemon made it durable); when the daemon does not answer, the batch stays, the
/// forwarder waits for a `PONG`, and sends it again (versions make that harmless).
/// Rejected events (the daemon's validation) are logged with the daemon's reason; a
/// request refused whole (`ERR`) is resent one event at a time and the refused event is
/// logged and dropped, so one oversized event cannot block the spool.
///
/// A `Service` (run it beside the HTTP server, in Hummingbird's `Application(services:)`):
/// it forwards from a thread of its own; graceful shutdown stops it at once, even with the
/// daemon down (what is in flight stays in the spool).
public final class Forwarder: Service {
    let spool: Spool
    let options: ForwarderOptions
    let logger: Logger
    private let stopped = Atomic<Bool>(false)
    private let stats = Mutex((lastLogSeq: UInt64(0), forwarded: 0))
    private let turn = Mutex<(@Sendable (_ spoolEmpty: Bool) -> Void)?>(nil)
    /// Called on every turn of the forwarding loop, with whether the spool was empty
    /// (`ConnectMetrics.forwarderTurn`).
    public var onTurn: (@Sendable (_ spoolEmpty: Bool) -> Void)? {
        get { turn.withLock { $0 } }
        set { turn.withLock { $0 = newValue } }
    }

    /// The daemon's `log_seq` after the last acknowledged batch (0: none yet), and how many
    /// events it acknowledged: `GET /health` shows them.
    public var progress: (lastLogSeq: UInt64, forwarded: Int) { stats.withLock { $0 } }

    public init(spool: Spool, options: ForwarderOptions, logger: Logger) {
        self.spool = spool
        self.options = options
        self.logger = logger
    }

    /// Forwards on its own thread until graceful shutdown (or cancellation); then stops at
    /// once, also when the daemon is down (a batch waiting for its ACK is left
    /// unacknowledged, in the spool, and sent again next time).
    public func run() async {
        let thread = ZMQThread(name: "ds-forwarder") { [self] in forwardUntilStopped() }
        await withTaskCancellationHandler {
            await withGracefulShutdownHandler {
                await thread.joined()
            } onGracefulShutdown: {
                self.stop()
            }
        } onCancel: {
            self.stop()
        }
    }

    private func stop() {
        stopped.store(true, ordering: .releasing)
        spool.close()
    }

    private var shouldStop: Bool { stopped.load(ordering: .acquiring) }

    /// Forwards until stopped. A failure of the client itself (a refused CURVE key, a
    /// socket error) never ends forwarding silently: it is logged, and after a pause a new
    /// client tries again (libzmq drops a refused connection for good). Events stay in the
    /// spool meanwhile.
    private func forwardUntilStopped() {
        while !shouldStop {
            do {
                try forward()
                return
            } catch is IngestClient.Cancelled {
                return  // stopping: what was in flight stays in the spool
            } catch let refused as IngestClient.Refused {
                logger.critical(
                    "Daemon refused this connector; events stay in the spool, retrying in 10 s",
                    metadata: ["forwarder.reason": "\(refused)", "spool.pending": "\(spool.pendingCount)"]
                )
            } catch {
                logger.critical(
                    "Forwarder failed; events stay in the spool, retrying in 10 s",
                    metadata: ["forwarder.error": "\(error)", "spool.pending": "\(spool.pendingCount)"]
                )
            }
            for _ in 0..<50 where !shouldStop { Thread.sleep(forTimeInterval: 0.2) }
        }
    }

    private func forward() throws {
        let context = try ZMQContext()
        let client = try IngestClient(
            context: context,
            endpoint: options.endpoint,
            curve: options.curve,
            window: 1,
            timeoutMilliseconds: options.timeoutMilliseconds,
            retries: options.retries
        )
        client.isCancelled = { [self] in shouldStop }
        var daemonDown = false
        // After an `ERR` (a request the daemon refuses whole, e.g. an event over its frame
        // limit), events go one per request until the refused one is found and dropped.
        var singlyUntil = 0
        while !shouldStop {
            let batch = spool.next(limit: singlyUntil > 0 ? 1 : options.batchSize, timeout: 0.2)
            onTurn?(batch.isEmpty)
            guard !batch.isEmpty else { continue }
            if daemonDown {
                guard try client.ping() else { continue }
                logger.notice(
                    "Daemon answers again; draining the spool",
                    metadata: ["spool.pending": "\(spool.pendingCount)"]
                )
                daemonDown = false
            }
            do {
                var logSeq: UInt64 = 0
                try client.send(batches: [batch]) { ack in
                    logSeq = max(logSeq, ack.body.logSeq)
                    for rejection in ack.body.rejected {
                        // The index comes from the daemon: never trusted to be in range.
                        let event = batch[max(0, min(rejection.index, batch.count - 1))]
                        self.logger.error(
                            "Daemon rejected an event",
                            metadata: [
                                "event.reason": "\(rejection.error)",
                                "event.json": "\(String(decoding: event, as: UTF8.self))",
                            ]
                        )
                    }
                }
                // Progress first: whoever sees the spool empty also sees its log_seq.
                stats.withLock { stats in
                    stats.lastLogSeq = max(stats.lastLogSeq, logSeq)
                    stats.forwarded += batch.count
                }
                try spool.acknowledge(batch.count)
                singlyUntil = max(0, singlyUntil - batch.count)
            } catch let failure as IngestClient.RequestFailure where failure.reason.hasPrefix("ERR") {
                if batch.count > 1 {
                    singlyUntil = batch.count
                } else {
                    logger.error(
                        "Daemon refused an event; dropped",
                        metadata: [
                            "forwarder.reason": "\(failure.reason)",
                            "event.json": "\(String(decoding: batch[0].prefix(2000), as: UTF8.self))",
                        ]
                    )
                    try spool.acknowledge(1)
                    singlyUntil = max(0, singlyUntil - 1)
                }
            } catch let failure as IngestClient.RequestFailure {
                logger.warning(
                    "Daemon unreachable; events stay in the spool",
                    metadata: ["forwarder.reason": "\(failure)", "spool.pending": "\(spool.pendingCount)"]
                )
                daemonDown = true
            }
        }
    }
}
