import DealModel

/// What one metric family reads of the facts, and so which fact changes can move it.
///
/// Most deal events change a field only some families read (an open deal moving a stage
/// touches stage conversion and qualified leads, never win rate or revenue). The daemon
/// sends each family the *projection* of every change: the facts with every field the
/// family never reads set to a fixed value, and `nil` when the record contributes nothing
/// to it (an open deal to win rate). A change whose projected old and new facts are equal
/// cannot move the family's series, and is not sent at all.
///
/// A family's engine only ever sees projected facts (live batches and rebuilds alike), so
/// what it retracts is always exactly what it added. The projection keeps every field the
/// family's series read, so its series are the same as from the full facts.
public struct FamilyProjection: Sendable {
    public let family: MetricFamily
    /// Per pipeline index, the qualified stage's index.
    private let qualifiedIndexes: [Int16]
    private let keepsPipeline: Bool, keepsTeam: Bool, keepsOwner: Bool, keepsSource: Bool

    public init(family: MetricFamily, model: Model) {
        self.family = family
        qualifiedIndexes = model.pipelines.map { Int16($0.qualifiedIndex) }
        let dimensions = family.dimensions
        keepsPipeline = dimensions.contains(.pipeline)
        keepsTeam = dimensions.contains(.team)
        keepsOwner = dimensions.contains(.owner)
        keepsSource = dimensions.contains(.source)
    }

    /// The change as this family sees it, or `nil` when it cannot move the family.
    public func project(_ change: FactChange) -> FactChange? {
        switch change {
        case .deal(let old, let new):
            let o = old.flatMap(project), n = new.flatMap(project)
            return o == n ? nil : .deal(old: o, new: n)
        case .spend(let old, let new):
            return family == .roi && old != new ? .spend(old: old, new: new) : nil
        case .account(let old, let new):
            return family == .customerRetentionRate && old != new ? .account(old: old, new: new) : nil
        }
    }

    /// The deal's facts with what this family never reads fixed; `nil` when it adds nothing.
    public func project(_ d: DealFacts) -> DealFacts? {
        var p = d
        // Dimensions this family is not published for; retention keys by (source, account).
        if !keepsPipeline { p.pipeline = 0 }
        if !keepsTeam { p.team = 0 }
        if !keepsOwner { p.owner = 0 }
        if !keepsSource && family != .customerRetentionRate { p.source = 0 }
        if family != .customerRetentionRate { p.account = 0 }
        switch family {
        case .newOpportunities:
            p.clearClosedCohort()
            p.amount = 0
            p.pipelineIndex = 0
            p.furthest = 0
        case .qualifiedLeads:
            // Only whether the qualified stage was reached: cap `furthest` there.
            p.clearClosedCohort()
            p.amount = 0
            p.furthest = min(p.furthest, qualifiedIndexes[Int(p.pipelineIndex)])
        case .stageConversion:
            p.clearClosedCohort()
            p.amount = 0
        case .winRate, .averageOrderValue, .salesCycleLength, .roi:
            // Closed cohort only: an open deal contributes nothing.
            guard d.isClosed else { return nil }
            p.pipelineIndex = 0
            p.furthest = 0
            if family == .winRate || d.status == .lost { p.amount = 0 }
            if family != .salesCycleLength || d.status == .lost { p.createdAt = Instant(nanoseconds: 0) }
            if family == .salesCycleLength { p.amount = 0 }
        case .revenue, .salesVelocity:
            p.pipelineIndex = 0
            p.furthest = 0
        case .customerRetentionRate:
            // Only won deals with an account make a customer, from their close.
            guard d.status == .won, d.account != DealFacts.noAccount else { return nil }
            p.pipeline = 0
            p.pipelineIndex = 0
            p.furthest = 0
            p.amount = 0
            p.createdAt = Instant(nanoseconds: 0)
            p.owner = 0
            p.team = 0
            p.leadSource = 0
        }
        return p
    }
}

extension DealFacts {
    /// As if the deal were open: for families that read only the created cohort.
    fileprivate mutating func clearClosedCohort() {
        status = .open
        closedAt = nil
    }
}
