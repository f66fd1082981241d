import Clients
import Foundation
public import Logging
public import ServiceLifecycle
import Wire
import ZeroMQ

/// The dashboard's subscription to the daemon: the Clone pattern of `dealstream tail`
/// (`UpdatesFollower`: subscribe, snapshot, then updates above the snapshot's `seq`, a gap
/// repaired by a fresh snapshot), feeding a `DashboardHub` one round at a time.
///
/// Why a Service with its own thread: the follower blocks in `zmq_poll`, which must not
/// run on the cooperative pool. Updates are held back until the `_progress` that ends
/// their round, so browsers only ever see whole rounds. When the daemon cannot be reached
/// (no snapshot reply) it retries every second; a daemon restarted with a lower `seq`
/// (its published state lost) is noticed by its `_progress` and answered with a snapshot.
public struct DashboardFollower: Service {
    public var updatesEndpoint: String
    public var snapshotEndpoint: String
    public var hub: DashboardHub
    public var logger: Logger
    /// How long a snapshot may take before the daemon counts as unreachable.
    public var snapshotTimeoutMilliseconds = 5000

    public init(updatesEndpoint: String, snapshotEndpoint: String, hub: DashboardHub, logger: Logger) {
        self.updatesEndpoint = updatesEndpoint
        self.snapshotEndpoint = snapshotEndpoint
        self.hub = hub
        self.logger = logger
    }

    public func run() async throws {
        let stop = StopFlag()
        let follower = self
        let thread = ZMQThread(name: "dashboard-follower") { follower.follow(stop: stop) }
        await withGracefulShutdownHandler {
            await withTaskCancellationHandler {
                await thread.joined()
            } onCancel: {
                stop.set()
            }
        } onGracefulShutdown: {
            stop.set()
        }
    }

    func follow(stop: StopFlag) {
        // SIGTERM and SIGINT belong to the service group's handler: this thread and the libzmq
        // threads it starts (which inherit the mask) must not take them, or the default action
        // would end the process instead of a graceful shutdown.
        var signals = sigset_t()
        sigemptyset(&signals)
        sigaddset(&signals, SIGTERM)
        sigaddset(&signals, SIGINT)
        pthread_sigmask(SIG_BLOCK, &signals, nil)
        let context: ZMQContext
        do { context = try ZMQContext() } catch {
            logger.critical("ZeroMQ context failed", metadata: ["error": "\(error)"])
            return
        }
        var failures = 0
        while !stop.isSet {
            do {
                try followOnce(context: context, stop: stop)
            } catch {
                hub.disconnected()
                if failures % 30 == 0 {
                    logger.warning(
                        "Daemon unreachable",
                        metadata: [
                            "daemon.snapshot": "\(snapshotEndpoint)", "error": "\(error)",
                        ]
                    )
                }
                failures += 1
                for _ in 0..<10 where !stop.isSet { Thread.sleep(forTimeInterval: 0.1) }
            }
        }
    }

    private func followOnce(context: ZMQContext, stop: StopFlag) throws {
        let follower = try UpdatesFollower(
            context: context,
            updatesEndpoint: updatesEndpoint,
            snapshotEndpoint: snapshotEndpoint,
            prefix: "",
            timeoutMilliseconds: snapshotTimeoutMilliseconds
        )
        Thread.sleep(forTimeInterval: 0.2)  // let the subscription reach the daemon before the snapshot
        if case .snapshot(_, _, let count) = try follower.takeSnapshot() {
            publishSnapshot(follower)
            logger.info(
                "Snapshot taken",
                metadata: [
                    "snapshot.series": "\(count)", "snapshot.seq": "\(follower.seq)",
                    "snapshot.log_seq": "\(follower.logSeq)",
                ]
            )
        }
        var pending: [String: [UInt8]?] = [:]
        var behindSince: Date?
        while !stop.isSet {
            batch: for event in try follower.poll(milliseconds: 100) {
                switch event {
                case .update(let series):
                    pending[series.topic] = .some(series.raw)
                    behindSince = nil
                case .removed(let topic, _):
                    pending[topic] = .some(nil)
                    behindSince = nil
                case .snapshot(_, _, let count):
                    pending = [:]
                    publishSnapshot(follower)
                    logger.info("Gap repaired by a snapshot", metadata: ["snapshot.series": "\(count)"])
                case .gap(let expected, let got):
                    logger.notice("Update gap", metadata: ["gap.expected": "\(expected)", "gap.got": "\(got)"])
                case .progress(let seq, let logSeq):
                    if seq < follower.seq {
                        // Old progress messages queued before a snapshot trail it; only progress
                        // below our position for 3 s with no newer update in between means the
                        // daemon started over below it.
                        guard let since = behindSince else {
                            behindSince = Date()
                            continue
                        }
                        if Date().timeIntervalSince(since) > 3 {
                            behindSince = nil
                            logger.notice(
                                "Daemon position went back; taking a snapshot",
                                metadata: ["daemon.seq": "\(seq)", "dashboard.seq": "\(follower.seq)"]
                            )
                            pending = [:]
                            _ = try follower.takeSnapshot()
                            publishSnapshot(follower)
                            break batch  // the rest of this batch is older than the snapshot
                        }
                        continue
                    }
                    behindSince = nil
                    hub.commit(changes: pending, seq: follower.seq, logSeq: logSeq)
                    pending = [:]
                }
            }
        }
    }

    private func publishSnapshot(_ follower: UpdatesFollower) {
        var series: [String: [UInt8]] = [:]
        series.reserveCapacity(follower.state.count)
        for (topic, value) in follower.state { series[topic] = value.raw }
        hub.replace(series: series, seq: follower.seq, logSeq: follower.logSeq)
    }
}
