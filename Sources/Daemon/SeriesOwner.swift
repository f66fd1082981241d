import PipelineMetrics

/// Who a published series belongs to: its family's partition. The daemon moves whole
/// partitions between worker sessions, so this is what removals and switches are counted in.
struct SeriesOwner: Hashable, Sendable, CustomStringConvertible {
    var family: MetricFamily
    var partition: Int
    var description: String { "\(family.rawValue)#\(partition)" }
}

/// One worker process the supervisor keeps running: a family and an ordinal (its
/// `workers.per_family` place), for names in logs and restarts.
struct SpawnSlot: Hashable, Sendable, CustomStringConvertible {
    var family: MetricFamily
    var ordinal: Int
    var description: String { "\(family.rawValue)/\(ordinal)" }
}
