public import DealModel

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
    private let reads: FamilyReads
    /// Per pipeline index, the qualified stage's index.
    private let qualifiedIndexes: [Int16]
    /// Which dimension fields are kept (the family is published for that dimension), one
    /// flag each: `project` runs for every change and every family, a `Set` lookup per
    /// field was most of its time.
    private let keepsPipeline: Bool
    private let keepsTeam: Bool
    private let keepsOwner: Bool
    private let keepsLeadSource: Bool
    private let keepsSource: Bool

    public init(family: MetricFamily, model: Model) {
        self.family = family
        reads = family.reads
        qualifiedIndexes = model.pipelines.map { Int16($0.qualifiedIndex) }
        let dimensions = Set(family.dimensions)
        keepsPipeline = dimensions.contains(.pipeline)
        keepsTeam = dimensions.contains(.team)
        keepsOwner = dimensions.contains(.owner)
        keepsLeadSource = dimensions.contains(.leadSource)
        keepsSource = dimensions.contains(.source) || reads.accounts
    }

    /// The change as this family sees it, or `nil` when it cannot move the family.
    public func project(_ change: FactChange) -> FactChange? {
        switch change {
        case .deal(let old, let new):
            let o = old.flatMap(project)
            let n = new.flatMap(project)
            return o == n ? nil : .deal(old: o, new: n)
        case .spend(let old, let new):
            return reads.spend && old != new ? .spend(old: old, new: new) : nil
        case .account(let old, let new):
            return reads.accounts && old != new ? .account(old: old, new: new) : nil
        }
    }

    /// The deal's facts with what this family never reads fixed (all derived from
    /// `MetricFamily.reads`); `nil` when it adds nothing.
    public func project(_ d: DealFacts) -> DealFacts? {
        // Retention counts won deals with an account, keyed by (CRM source, account).
        if reads.accounts && (d.status != .won || d.account == DealFacts.noAccount) { return nil }
        // Closed cohort only: an open deal contributes nothing.
        if !reads.createdCohort && reads.closedCohort && !d.isClosed { return nil }
        var p = d
        // Dimensions this family is not published for.
        if !keepsPipeline { p.pipeline = 0 }
        if !keepsTeam { p.team = 0 }
        if !keepsOwner { p.owner = 0 }
        if !keepsLeadSource { p.leadSource = 0 }
        if !keepsSource { p.source = 0 }
        if !reads.accounts { p.account = 0 }
        if reads.createdCohort && !reads.closedCohort {
            // As if the deal were open: only the created cohort is read.
            p.status = .open
            p.closedAt = nil
        }
        let won = d.status == .won
        if !(reads.createdAmount || (reads.wonAmount && won)) { p.amount = 0 }
        if !(reads.createdCohort || (reads.wonDuration && won)) { p.createdAt = Instant(nanoseconds: 0) }
        switch reads.stages {
        case .none:
            p.pipelineIndex = 0
            p.furthest = 0
        case .qualifiedOnly:
            p.furthest = min(p.furthest, qualifiedIndexes[Int(p.pipelineIndex)])
        case .all:
            break
        }
        return p
    }
}
