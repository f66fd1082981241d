import Dispatch
import Foundation
public import Observability
import Prometheus
import Synchronization

/// `dealstream connect`'s Prometheus metrics and probe state: webhooks by status code,
/// spool depth, forward lag, events forwarded.
///
/// Why: a connector is the first place data can pile up (the daemon down, a vendor
/// retrying storms, a bad mapping answering 422): the spool depth and the forward lag say
/// so before the CRM's webhook dashboard does. `/ready` is false while the spool is full
/// (webhooks get 503) or the forwarder thread stops turning.
///
/// - Metrics: `dealstream_connect_webhooks_total{vendor,code}`,
///   `dealstream_connect_spool_events{vendor}`, `dealstream_connect_forward_lag_seconds{vendor}`
///   (since the spool was last empty), `dealstream_connect_forwarded_events_total{vendor}`.
public final class ConnectMetrics: Sendable {
    public let exposition: MetricsExposition
    public let probe: ProbeState
    public let notifier: SystemdNotifier
    private let vendor: String
    private let spool: Spool
    private let webhooks = Mutex<[Int: Prometheus.Counter]>([:])
    /// Uptime ns when the forwarder last found the spool empty.
    private let lastEmpty = Atomic<UInt64>(DispatchTime.now().uptimeNanoseconds)
    private let forwardedSeen = Atomic<Int>(0)

    public init(vendor: String, spool: Spool, forwarder: Forwarder, notifier: SystemdNotifier) {
        let exposition = MetricsExposition()
        self.exposition = exposition
        // The forwarder may wait out a send timeout and its retries before it turns again.
        probe = ProbeState(liveTimeout: .seconds(60))
        self.notifier = notifier
        self.vendor = vendor
        self.spool = spool
        let labels = [("vendor", vendor)]
        let depth = exposition.gauge(
            "dealstream_connect_spool_events",
            "Events in the spool, not yet acknowledged by the daemon.",
            labels: labels
        )
        let lag = exposition.gauge(
            "dealstream_connect_forward_lag_seconds",
            "Seconds since the spool was last empty (0 while the forwarder keeps up).",
            labels: labels
        )
        let forwarded = exposition.counter(
            "dealstream_connect_forwarded_events_total",
            "Events the daemon acknowledged.",
            labels: labels
        )
        exposition.onScrape { [weak self] in
            guard let self else { return }
            let pending = spool.pendingCount
            depth.set(Double(pending))
            let now = DispatchTime.now().uptimeNanoseconds
            if pending == 0 { self.lastEmpty.store(now, ordering: .relaxed) }
            lag.set(Double(now &- self.lastEmpty.load(ordering: .relaxed)) / 1e9)
            let total = forwarder.progress.forwarded
            let before = self.forwardedSeen.exchange(total, ordering: .relaxed)
            if total > before { forwarded.increment(by: Int64(total - before)) }
        }
        // Every status a webhook is commonly answered with, present from the start.
        for code in [200, 400, 401, 422, 503] { _ = counter(code) }
    }

    private func counter(_ code: Int) -> Prometheus.Counter {
        webhooks.withLock { counters in
            if let c = counters[code] { return c }
            let c = exposition.counter(
                "dealstream_connect_webhooks_total",
                "Webhook requests answered, by HTTP status code.",
                labels: [("vendor", vendor), ("code", "\(code)")]
            )
            counters[code] = c
            return c
        }
    }

    /// A webhook answered with `status`.
    public func answered(_ status: Int) { counter(status).increment() }

    /// From the forwarder thread, every turn: liveness, the watchdog, the lag's reference.
    public func forwarderTurn(spoolEmpty: Bool) {
        probe.loopAnswered()
        notifier.watchdogIfDue()
        if spoolEmpty { lastEmpty.store(DispatchTime.now().uptimeNanoseconds, ordering: .relaxed) }
    }

    /// Before a probe answers: ready needs room in the spool.
    public func refresh() { probe.setCaughtUp(spool.pendingCount < spool.capacity) }
}
