import CoreMetrics
public import Prometheus
import Synchronization

/// One process's metrics in Prometheus' text exposition format, for `GET /metrics`.
///
/// Why: operators already scrape Prometheus and build Grafana dashboards on it. The
/// process's own metrics are made here with a help text each (`promtool check metrics`
/// wants one); `bootstrapSwiftMetrics()` makes the same registry the swift-metrics backend,
/// so a library emitting through swift-metrics (`Counter(label:)`) lands in the same
/// scrape. Values that are a function of time (a checkpoint's age) are set by the
/// `onScrape` hooks just before each exposition.
public final class MetricsExposition: Sendable {
    public let registry = PrometheusCollectorRegistry()
    private let hooks = Mutex<[@Sendable () -> Void]>([])

    public init() {}

    /// Makes this registry swift-metrics' backend (once per process; later calls do nothing).
    public func bootstrapSwiftMetrics() {
        MetricsExposition.bootstrapped.withLock { done in
            guard !done else { return }
            done = true
            MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
        }
    }

    private static let bootstrapped = Mutex<Bool>(false)

    /// Runs `hook` before every exposition.
    public func onScrape(_ hook: @escaping @Sendable () -> Void) { hooks.withLock { $0.append(hook) } }

    /// The text exposition (`text/plain; version=0.0.4`).
    public func render() -> [UInt8] {
        for hook in hooks.withLock({ $0 }) { hook() }
        return registry.emitToBuffer()
    }

    public static let contentType = "text/plain; version=0.0.4; charset=utf-8"

    private func descriptor(_ name: String, _ help: String) -> MetricNameDescriptor {
        MetricNameDescriptor(metricName: name, unitName: "", helpText: help)
    }

    public func counter(_ name: String, _ help: String, labels: [(String, String)] = []) -> Prometheus.Counter {
        registry.makeCounter(descriptor: descriptor(name, help), labels: labels)
    }

    public func gauge(_ name: String, _ help: String, labels: [(String, String)] = []) -> Prometheus.Gauge {
        registry.makeGauge(descriptor: descriptor(name, help), labels: labels)
    }

    /// A histogram of durations, exposed in seconds.
    public func durations(
        _ name: String,
        _ help: String,
        buckets: [Duration],
        labels: [(String, String)] = []
    )
        -> DurationHistogram
    {
        registry.makeDurationHistogram(descriptor: descriptor(name, help), labels: labels, buckets: buckets)
    }

    /// Buckets from 50 µs to 10 s, for request and sync latencies.
    public static let latencyBuckets: [Duration] = [
        .microseconds(50), .microseconds(100), .microseconds(250), .microseconds(500), .milliseconds(1),
        .milliseconds(2.5), .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50),
        .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1), .seconds(2.5), .seconds(10),
    ]

    /// Buckets from 10 ms to 10 minutes, for checkpoints.
    public static let slowBuckets: [Duration] = [
        .milliseconds(10), .milliseconds(50), .milliseconds(100), .milliseconds(500), .seconds(1), .seconds(5),
        .seconds(10), .seconds(30), .seconds(60), .seconds(120), .seconds(300), .seconds(600),
    ]
}
