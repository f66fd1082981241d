import PipelineMetrics

/// One worker slot: a metric family and a shard of it.
struct Slot: Hashable, Sendable, CustomStringConvertible {
    var family: MetricFamily
    var shard: Int
    var description: String { "\(family.rawValue)#\(shard)" }
}
