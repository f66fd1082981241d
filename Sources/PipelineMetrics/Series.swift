public import DealModel

/// The metric names a topic can carry (METRICS.md §3).
public enum MetricName: UInt8, Sendable, CaseIterable {
    case newOpportunities, qualifiedLeads, qualificationRate, winRate, stageConversion, revenue, dealSize
    case averageOrderValue, salesCycleLength, salesVelocity, roi, customerRetentionRate

    public var name: String {
        switch self {
        case .newOpportunities: "new_opportunities"
        case .qualifiedLeads: "qualified_leads"
        case .qualificationRate: "qualification_rate"
        case .winRate: "win_rate"
        case .stageConversion: "stage_conversion"
        case .revenue: "revenue"
        case .dealSize: "deal_size"
        case .averageOrderValue: "average_order_value"
        case .salesCycleLength: "sales_cycle_length"
        case .salesVelocity: "sales_velocity"
        case .roi: "roi"
        case .customerRetentionRate: "customer_retention_rate"
        }
    }
}

/// One series: `(metric, dimension, key, period)`, with the pipeline and stage pair for
/// `stage_conversion`. Strings are `StringTable` ids.
public struct SeriesID: Hashable, Sendable {
    public var metric: MetricName
    public var dimension: Dimension
    public var key: UInt32
    public var period: Period
    /// `stage_conversion` only: pipeline index in the model and the `from` stage index.
    public var pipeline: UInt16
    public var fromStage: UInt16

    public init(
        metric: MetricName,
        dimension: Dimension,
        key: UInt32,
        period: Period,
        pipeline: UInt16 = 0,
        fromStage: UInt16 = 0
    ) {
        self.metric = metric
        self.dimension = dimension
        self.key = key
        self.period = period
        self.pipeline = pipeline
        self.fromStage = fromStage
    }
}

/// A payload field's value: a count, or a double that may be null.
public enum FieldValue: Sendable, Equatable {
    case count(Int)
    case number(Double?)
}

/// The new value of a series, or its removal (`fields == nil`).
public struct SeriesUpdate: Sendable {
    public var id: SeriesID
    /// `value` first, then the metric's other fields (METRICS.md §3); `nil` when removed.
    public var fields: [(String, FieldValue)]?

    public init(id: SeriesID, fields: [(String, FieldValue)]?) {
        self.id = id
        self.fields = fields
    }
}
