public import DealModel

/// The ten metric families of METRICS.md §3; each runs as its own worker process.
public enum MetricFamily: String, Sendable, CaseIterable {
    case newOpportunities = "new_opportunities"
    case qualifiedLeads = "qualified_leads"
    case winRate = "win_rate"
    case stageConversion = "stage_conversion"
    case revenue = "revenue"
    case averageOrderValue = "average_order_value"
    case salesCycleLength = "sales_cycle_length"
    case salesVelocity = "sales_velocity"
    case roi = "roi"
    case customerRetentionRate = "customer_retention_rate"

    /// The metrics this family publishes.
    public var metrics: [MetricName] {
        switch self {
        case .newOpportunities: [.newOpportunities]
        case .qualifiedLeads: [.qualifiedLeads, .qualificationRate]
        case .winRate: [.winRate]
        case .stageConversion: [.stageConversion]
        case .revenue: [.revenue, .dealSize]
        case .averageOrderValue: [.averageOrderValue]
        case .salesCycleLength: [.salesCycleLength]
        case .salesVelocity: [.salesVelocity]
        case .roi: [.roi]
        case .customerRetentionRate: [.customerRetentionRate]
        }
    }

    /// The dimensions it is published for (METRICS.md §2).
    public var dimensions: [Dimension] {
        switch self {
        case .roi: [.all, .leadSource]
        case .customerRetentionRate: [.all]
        default: Dimension.allCases
        }
    }

    /// What this family's series read of the facts: the one declaration that its
    /// projection (`FamilyProjection`), its engine's aggregates (`MetricEngine`) and so
    /// what reaches its worker all derive from. Adding a metric is this entry and its
    /// rendering in `MetricEngine.render`.
    public var reads: FamilyReads {
        switch self {
        case .newOpportunities: FamilyReads(createdCohort: true)
        case .qualifiedLeads: FamilyReads(createdCohort: true, stages: .qualifiedOnly)
        case .stageConversion: FamilyReads(createdCohort: true, stages: .all)
        case .winRate: FamilyReads(closedCohort: true)
        case .revenue:
            FamilyReads(
                createdCohort: true,
                closedCohort: true,
                createdAmount: true,
                wonAmount: true,
                amountSketch: true
            )
        case .averageOrderValue: FamilyReads(closedCohort: true, wonAmount: true)
        case .salesCycleLength: FamilyReads(closedCohort: true, wonDuration: true, durationSketch: true)
        case .salesVelocity: FamilyReads(createdCohort: true, closedCohort: true, wonAmount: true, wonDuration: true)
        case .roi: FamilyReads(closedCohort: true, wonAmount: true, spend: true)
        case .customerRetentionRate: FamilyReads(accounts: true)
        }
    }
}

/// What one metric family reads of the facts (METRICS.md §2, §3).
///
/// Declared once per family in `MetricFamily.reads`. A field no flag asks for is fixed by
/// the family's projection, so a change to it never reaches the family's worker, and the
/// engine keeps no aggregate for it.
public struct FamilyReads: Sendable, Equatable {
    /// How much of a deal's stage history a family reads.
    public enum Stages: Sendable, Equatable {
        case none
        /// Only whether the pipeline's qualified stage was reached.
        case qualifiedOnly
        /// The furthest stage reached, for stage-to-stage conversion.
        case all
    }

    /// Deals by `created_at`: counts (and what `stages` and `createdAmount` ask for).
    public var createdCohort = false
    /// Deals by `closed_at`: won and lost counts (and what `wonAmount`, `wonDuration` ask for).
    public var closedCohort = false
    /// The amount of every created deal (deal size: sum and percentiles).
    public var createdAmount = false
    /// The amount of won deals (revenue, average order value).
    public var wonAmount = false
    /// `closed_at − created_at` of won deals (sales cycle length).
    public var wonDuration = false
    /// A percentile sketch of created deals' amounts (`deal_size` p50/p90).
    public var amountSketch = false
    /// A percentile sketch of won deals' durations (`sales_cycle_length` p50/p90).
    public var durationSketch = false
    public var stages = Stages.none
    /// Marketing spend records (ROI).
    public var spend = false
    /// Won deals with an account, and account status changes (retention).
    public var accounts = false

    public init(
        createdCohort: Bool = false,
        closedCohort: Bool = false,
        createdAmount: Bool = false,
        wonAmount: Bool = false,
        wonDuration: Bool = false,
        amountSketch: Bool = false,
        durationSketch: Bool = false,
        stages: Stages = .none,
        spend: Bool = false,
        accounts: Bool = false
    ) {
        self.createdCohort = createdCohort
        self.closedCohort = closedCohort
        self.createdAmount = createdAmount
        self.wonAmount = wonAmount
        self.wonDuration = wonDuration
        self.amountSketch = amountSketch
        self.durationSketch = durationSketch
        self.stages = stages
        self.spend = spend
        self.accounts = accounts
    }
}

extension MetricFamily {
    /// Whether a topic's (encoded) metric segment is one of this family's metrics
    /// (`stage_conversion:<pipeline>:<from>:<to>` for stage conversion).
    public func publishes(metricSegment segment: String) -> Bool {
        if self == .stageConversion { return segment.hasPrefix("stage_conversion:") }
        return metrics.contains { $0.name == segment }
    }
}
