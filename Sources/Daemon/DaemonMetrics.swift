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

    let requests: [String: Prometheus.Counter]
    let errors: [String: Prometheus.Counter]
    let received: Prometheus.Counter
    let applied: Prometheus.Counter
    let duplicate: Prometheus.Counter
    let stale: Prometheus.Counter
    let rejected: [RejectionClass: Prometheus.Counter]
    let ackLatency: DurationHistogram
    let syncLatency: DurationHistogram
    let loggedLogSeq: Prometheus.Gauge
    let publishedLogSeq: Prometheus.Gauge
    let publishLag: Prometheus.Gauge
    let rounds: Prometheus.Counter
    let roundGap: Prometheus.Gauge
    let roundOutput: Prometheus.Gauge
    let seriesPublished: Prometheus.Counter
    let subscribers: Prometheus.Gauge
    let checkpointDuration: DurationHistogram
    let checkpointFailures: Prometheus.Counter
    let checkpointLast: Prometheus.Gauge
    let checkpointAge: Prometheus.Gauge
    let ready: Prometheus.Gauge
    let loopSilence: Prometheus.Gauge
    var sessionsUp: [MetricFamily: Prometheus.Gauge] = [:]
    var restarts: [MetricFamily: Prometheus.Counter] = [:]
    var moves: [MetricFamily: Prometheus.Counter] = [:]
    var outstandingFacts: [MetricFamily: Prometheus.Gauge] = [:]
    var outstandingBatches: [MetricFamily: Prometheus.Gauge] = [:]
    var vacantPartitions: [MetricFamily: Prometheus.Gauge] = [:]

    /// Positions as last set (the lag is their difference); the loop thread writes them.
    let logged = Atomic<UInt64>(0)
    let publishedPosition = Atomic<UInt64>(0)
    let publishedSeq = Atomic<UInt64>(0)
    /// Unix time of the last checkpoint written (or found at start), 0: none.
    let lastCheckpoint = Atomic<UInt64>(0)

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

    public convenience init(families: [MetricFamily] = MetricFamily.allCases) {
        self.init(
            exposition: MetricsExposition(),
            probe: ProbeState(),
            notifier: .fromEnvironment(),
            families: families
        )
    }

    public init(
        exposition: MetricsExposition,
        probe: ProbeState,
        notifier: SystemdNotifier,
        families: [MetricFamily]
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
        roundGap = e.gauge(
            "dealstream_publish_round_gap_seconds",
            "The gap between rounds the output budget allows now (publish.interval_ms up to publish.max_interval_ms)."
        )
        roundOutput = e.gauge(
            "dealstream_publish_round_output_seconds",
            "CPU seconds the daemon spent on the last round's output (results taken in, rendered, published)."
        )
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
                "Worker sessions connected, by family.",
                labels: labels
            )
            restarts[family] = e.counter(
                "dealstream_worker_restarts_total",
                "Spawned workers that exited and were restarted.",
                labels: labels
            )
            moves[family] = e.counter(
                "dealstream_worker_partition_moves_total",
                "Partitions moved to another worker session (joins, leaves, deaths).",
                labels: labels
            )
            outstandingFacts[family] = e.gauge(
                "dealstream_worker_outstanding_facts",
                "Facts sent to the family's workers and not yet answered, summed over its sessions.",
                labels: labels
            )
            outstandingBatches[family] = e.gauge(
                "dealstream_worker_outstanding_batches",
                "Fact batches not yet answered by the family's slowest session.",
                labels: labels
            )
            vacantPartitions[family] = e.gauge(
                "dealstream_worker_vacant_partitions",
                "Partitions of the family with no worker serving them (rounds wait for them).",
                labels: labels
            )
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
}
