import DealModel
import Foundation
public import Observability
public import PipelineMetrics
import Prometheus
import Synchronization
import Wire

/// The daemon's Prometheus metrics, its probe state and its systemd watchdog, behind
/// one-line calls from the loop, the ingest thread, the durable store and the supervisor.
///
/// Why: an operator sees ingest rate, outcomes, lag, outstanding work, worker churn and
/// checkpoint age on `/metrics` instead of in log lines, and `/ready` tells a load
/// balancer (or Kubernetes) whether this daemon serves current data. Every metric is made
/// once here, so the hot paths only increment. docs/operations.md lists every metric.
///
/// Threads: `loopTurn`, `acknowledged`, `refused`, `workers`, `published` and
/// `workerAdmitted` run on the loop thread; `requestReceived` and `malformed` on the
/// ingest thread; `checkpointWritten` on the checkpoint thread; `workerRestarted` on the
/// supervisor. The Prometheus collectors are thread-safe; what the loop keeps for itself
/// (`lastPID`) is only touched by the loop.
public final class DaemonMetrics: @unchecked Sendable {
    public let exposition: MetricsExposition
    public let probe: ProbeState
    public let notifier: SystemdNotifier

    private let requests: [String: Prometheus.Counter]
    private let errors: [String: Prometheus.Counter]
    private let received: Prometheus.Counter
    private let applied: Prometheus.Counter
    private let duplicate: Prometheus.Counter
    private let stale: Prometheus.Counter
    private let rejected: [RejectionClass: Prometheus.Counter]
    private let ackLatency: DurationHistogram
    private let syncLatency: DurationHistogram
    private let loggedLogSeq: Prometheus.Gauge
    private let publishedLogSeq: Prometheus.Gauge
    private let publishLag: Prometheus.Gauge
    private let rounds: Prometheus.Counter
    private let seriesPublished: Prometheus.Counter
    private let subscribers: Prometheus.Gauge
    private let checkpointDuration: DurationHistogram
    private let checkpointFailures: Prometheus.Counter
    private let checkpointLast: Prometheus.Gauge
    private let checkpointAge: Prometheus.Gauge
    private let ready: Prometheus.Gauge
    private let loopSilence: Prometheus.Gauge
    private var sessionsUp: [MetricFamily: Prometheus.Gauge] = [:]
    private var restarts: [MetricFamily: Prometheus.Counter] = [:]
    private var moves: [MetricFamily: Prometheus.Counter] = [:]
    private var outstandingFacts: [Slot: Prometheus.Gauge] = [:]
    private var outstandingBatches: [Slot: Prometheus.Gauge] = [:]

    /// Positions as last set (the lag is their difference); the loop thread writes them.
    private let logged = Atomic<UInt64>(0)
    private let publishedPosition = Atomic<UInt64>(0)
    private let publishedSeq = Atomic<UInt64>(0)
    /// Unix time of the last checkpoint written (or found at start), 0: none.
    private let lastCheckpoint = Atomic<UInt64>(0)
    /// The pid of each slot's last session, to count a slot moving to another worker.
    private var lastPID: [Slot: Int] = [:]

    /// What an event was rejected for (the `reason` label).
    enum RejectionClass: String, CaseIterable {
        /// Not an event at all: not JSON, not UTF-8, not the protobuf message.
        case malformed
        /// Names what the model does not have: a pipeline, a stage, a currency.
        case model
        /// A field missing, of the wrong type, or out of range.
        case invalid

        init(_ rejection: EventRejection) {
            if rejection.field == "event" {
                self = .malformed
            } else if rejection.reason.contains("configured") || rejection.reason.contains("currency")
                || rejection.reason.contains("reporting currency") || rejection.field.hasSuffix("currency")
            {
                self = .model
            } else {
                self = .invalid
            }
        }
    }

    public convenience init(families: [MetricFamily] = MetricFamily.allCases, shards: Int = 1) {
        self.init(
            exposition: MetricsExposition(),
            probe: ProbeState(),
            notifier: .fromEnvironment(),
            families: families,
            shards: shards
        )
    }

    public init(
        exposition: MetricsExposition,
        probe: ProbeState,
        notifier: SystemdNotifier,
        families: [MetricFamily],
        shards: Int
    ) {
        self.exposition = exposition
        self.probe = probe
        self.notifier = notifier
        let e = exposition
        requests = Dictionary(
            uniqueKeysWithValues: ["events", "ping"].map {
                (
                    $0,
                    e.counter(
                        "dealstream_ingest_requests_total",
                        "Ingest requests read, by type (events, ping).",
                        labels: [("type", $0)]
                    )
                )
            }
        )
        errors = Dictionary(
            uniqueKeysWithValues: ["malformed", "store"].map {
                (
                    $0,
                    e.counter(
                        "dealstream_ingest_errors_total",
                        "Ingest requests answered ERR, by reason: malformed request, or the store could not commit.",
                        labels: [("reason", $0)]
                    )
                )
            }
        )
        received = e.counter(
            "dealstream_events_received_total",
            "Events in acknowledged requests (= applied + duplicate + stale + rejected)."
        )
        applied = e.counter("dealstream_events_applied_total", "Events that changed a record.")
        duplicate = e.counter("dealstream_events_duplicate_total", "Events at a version already held (a resend).")
        stale = e.counter("dealstream_events_stale_total", "Events older than the version held.")
        rejected = Dictionary(
            uniqueKeysWithValues: RejectionClass.allCases.map {
                (
                    $0,
                    e.counter(
                        "dealstream_events_rejected_total",
                        "Events rejected, by reason class: malformed, model (unknown pipeline, stage, currency), invalid.",
                        labels: [("reason", $0.rawValue)]
                    )
                )
            }
        )
        ackLatency = e.durations(
            "dealstream_ingest_ack_latency_seconds",
            "From reading an EVENTS request to handing back its ACK (decode, resolve, sync).",
            buckets: MetricsExposition.latencyBuckets
        )
        syncLatency = e.durations(
            "dealstream_log_sync_duration_seconds",
            "One group commit of the event log (write and fdatasync).",
            buckets: MetricsExposition.latencyBuckets
        )
        loggedLogSeq = e.gauge("dealstream_log_seq", "Records in the event log (the last acknowledged log_seq).")
        publishedLogSeq = e.gauge("dealstream_published_log_seq", "The log_seq the published metrics are at.")
        publishLag = e.gauge(
            "dealstream_publish_lag_records",
            "Logged minus published log_seq: records not yet in the metrics."
        )
        rounds = e.counter("dealstream_publish_rounds_total", "Publication rounds (each ends with _progress).")
        seriesPublished = e.counter("dealstream_published_series_total", "Series updates and removals published.")
        subscribers = e.gauge("dealstream_subscribers", "Connections to the updates endpoint (subscribers).")
        checkpointDuration = e.durations(
            "dealstream_checkpoint_duration_seconds",
            "Writing one checkpoint.",
            buckets: MetricsExposition.slowBuckets
        )
        checkpointFailures = e.counter("dealstream_checkpoint_failures_total", "Checkpoints that could not be written.")
        checkpointLast = e.gauge(
            "dealstream_checkpoint_last_success_timestamp_seconds",
            "Unix time of the last checkpoint written (or found at start)."
        )
        checkpointAge = e.gauge(
            "dealstream_checkpoint_age_seconds",
            "Seconds since the last checkpoint (-1: none yet)."
        )
        ready = e.gauge("dealstream_ready", "1 while /ready answers 200.")
        loopSilence = e.gauge("dealstream_loop_silence_seconds", "Seconds since the daemon loop last answered.")
        for family in families {
            let labels = [("family", family.rawValue)]
            sessionsUp[family] = e.gauge(
                "dealstream_worker_sessions",
                "Worker slots with a live session, by family.",
                labels: labels
            )
            restarts[family] = e.counter(
                "dealstream_worker_restarts_total",
                "Spawned workers that exited and were restarted.",
                labels: labels
            )
            moves[family] = e.counter(
                "dealstream_worker_partition_moves_total",
                "A slot taken by another worker process than its last one.",
                labels: labels
            )
            for shard in 0..<shards {
                let slot = Slot(family: family, shard: shard)
                let slotLabels = labels + [("shard", "\(shard)")]
                outstandingFacts[slot] = e.gauge(
                    "dealstream_worker_outstanding_facts",
                    "Facts sent to the slot's worker and not yet answered.",
                    labels: slotLabels
                )
                outstandingBatches[slot] = e.gauge(
                    "dealstream_worker_outstanding_batches",
                    "Fact batches sent to the slot's worker and not yet answered.",
                    labels: slotLabels
                )
            }
        }
        exposition.onScrape { [weak self] in
            guard let self else { return }
            let last = self.lastCheckpoint.load(ordering: .relaxed)
            let age: Double = last == 0 ? -1 : max(0, Date().timeIntervalSince1970 - Double(last))
            self.checkpointAge.set(age)
            self.ready.set(Double(self.probe.isReady ? 1 : 0))
            self.loopSilence.set(Double(self.probe.loopSilence ?? -1))
        }
    }

    // MARK: loop thread

    /// Every turn of the loop: the liveness stamp and, under systemd, the watchdog.
    func loopTurn() {
        probe.loopAnswered()
        notifier.watchdogIfDue()
    }

    /// After the ACKs of a committed group are handed back.
    func acknowledged(_ requests: [IngestFront.Request], _ acks: [IngestProtocol.AckBody]) {
        let now = DispatchTime.now().uptimeNanoseconds
        var counts = (received: 0, applied: 0, duplicate: 0, stale: 0)
        for (request, ack) in zip(requests, acks) {
            counts.received += request.frames.count
            counts.applied += ack.applied
            counts.duplicate += ack.duplicate
            counts.stale += ack.stale
            for rejection in ack.rejected {
                guard rejection.index < request.decoded.count, case .failure(let why) = request.decoded[rejection.index]
                else {
                    rejected[.invalid]!.increment()
                    continue
                }
                rejected[RejectionClass(why)]!.increment()
            }
            ackLatency.recordNanoseconds(Int64(now &- request.received))
        }
        received.increment(by: Int64(counts.received))
        applied.increment(by: Int64(counts.applied))
        duplicate.increment(by: Int64(counts.duplicate))
        stale.increment(by: Int64(counts.stale))
    }

    /// A group the store could not commit, answered ERR.
    func refused(_ requests: Int) { errors["store"]!.increment(by: Int64(requests)) }

    /// A group commit that took `nanoseconds`, after which the log holds `logSeq` records.
    func synced(nanoseconds: UInt64, logSeq: UInt64) {
        syncLatency.recordNanoseconds(Int64(nanoseconds))
        logged.store(logSeq, ordering: .relaxed)
        loggedLogSeq.set(Double(logSeq))
        publishLag.set(Double(logSeq &- min(logSeq, publishedPosition.load(ordering: .relaxed))))
    }

    /// After a publication round: its position and sequence number, and the subscribers.
    func published(_ state: PublishedState, subscribers connected: Int) {
        subscribers.set(Double(connected))
        let (logSeq, seq) = (state.logSeq, state.seq)
        rounds.increment()
        let before = publishedSeq.exchange(seq, ordering: .relaxed)
        if seq > before { seriesPublished.increment(by: Int64(seq - before)) }
        publishedPosition.store(logSeq, ordering: .relaxed)
        publishedLogSeq.set(Double(logSeq))
        let log = logged.load(ordering: .relaxed)
        publishLag.set(Double(log &- min(log, logSeq)))
    }

    /// The state restored at start: where the log and the saved publication are.
    func restored(logSeq: UInt64, published: PublishedState, checkpoint: String) {
        let (position, seq) = (published.logSeq, published.seq)
        logged.store(logSeq, ordering: .relaxed)
        loggedLogSeq.set(Double(logSeq))
        publishedSeq.store(seq, ordering: .relaxed)
        publishedPosition.store(position, ordering: .relaxed)
        publishedLogSeq.set(Double(position))
        publishLag.set(Double(logSeq &- min(logSeq, position)))
        if let modified = (try? FileManager.default.attributesOfItem(atPath: checkpoint))?[.modificationDate] as? Date {
            checkpointAt(modified.timeIntervalSince1970)
        }
    }

    /// The worker slots as the loop sees them (each heartbeat): sessions up per family,
    /// outstanding work per slot, and whether every slot has a caught-up worker.
    func workers(_ registry: WorkerRegistry) {
        var up: [MetricFamily: Int] = [:]
        var allCaughtUp = true
        for slot in registry.slots {
            let session = registry.sessions[slot]
            if session != nil { up[slot.family, default: 0] += 1 }
            outstandingFacts[slot]?.set(Double(session?.outstandingFacts ?? 0))
            outstandingBatches[slot]?.set(Double(session?.outstanding ?? 0))
            // Caught up: its rebuild is sent and answered (it has reported a position).
            if session == nil || session?.rebuildCursor != nil || session?.reported == nil { allCaughtUp = false }
        }
        for (family, gauge) in sessionsUp { gauge.set(Double(up[family] ?? 0)) }
        probe.setCaughtUp(allCaughtUp)
    }

    /// A worker admitted for `slot`.
    func workerAdmitted(_ slot: Slot, pid: Int) {
        if let last = lastPID[slot], last != pid { moves[slot.family]?.increment() }
        lastPID[slot] = pid
    }

    // MARK: other threads

    /// The ingest thread read a request of `type` (`events`, `ping`), or answered one ERR.
    func requestReceived(_ type: String) { requests[type]?.increment() }
    func malformed() { errors["malformed"]!.increment() }

    /// A checkpoint finished (`ok`) or failed, after `seconds`.
    func checkpointWritten(seconds: Double, ok: Bool) {
        guard ok else {
            checkpointFailures.increment()
            return
        }
        checkpointDuration.record(.nanoseconds(Int64(seconds * 1e9)))
        checkpointAt(Date().timeIntervalSince1970)
    }

    private func checkpointAt(_ unixTime: Double) {
        lastCheckpoint.store(UInt64(unixTime), ordering: .relaxed)
        checkpointLast.set(unixTime)
    }

    /// The supervisor restarts the worker of `slot`.
    func workerRestarted(_ slot: Slot) { restarts[slot.family]?.increment() }
}
