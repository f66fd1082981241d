/// The derived state of one current deal: exactly what the metrics read, nothing more.
///
/// The record store turns the events of a deal (current version, history, deletions)
/// into these facts; a worker only ever sees a deal's old and new facts, retracts the
/// old contribution and adds the new one. Strings are `StringTable` ids.
public struct DealFacts: Sendable, Equatable {
    public var source: UInt32
    public var pipeline: UInt32
    public var owner: UInt32
    public var team: UInt32
    public var leadSource: UInt32
    /// `StringTable` id of the account, or `DealFacts.noAccount`.
    public var account: UInt32
    public var status: DealStatus
    /// Index into `Model.pipelines`.
    public var pipelineIndex: UInt16
    /// The furthest stage index reached (METRICS.md §1).
    public var furthest: Int16
    public var amount: Double
    public var createdAt: Instant
    public var closedAt: Instant?

    public static let noAccount = UInt32.max

    public init(
        source: UInt32,
        pipeline: UInt32,
        owner: UInt32,
        team: UInt32,
        leadSource: UInt32,
        account: UInt32,
        status: DealStatus,
        pipelineIndex: UInt16,
        furthest: Int16,
        amount: Double,
        createdAt: Instant,
        closedAt: Instant?
    ) {
        self.source = source
        self.pipeline = pipeline
        self.owner = owner
        self.team = team
        self.leadSource = leadSource
        self.account = account
        self.status = status
        self.pipelineIndex = pipelineIndex
        self.furthest = furthest
        self.amount = amount
        self.createdAt = createdAt
        self.closedAt = closedAt
    }

    /// Whether the deal is in the closed cohort (won or lost).
    public var isClosed: Bool { status != .open }
}

/// The derived state of one current spend record.
public struct SpendFacts: Sendable, Equatable {
    public var leadSource: UInt32
    public var amount: Double
    public var date: Instant
    public init(leadSource: UInt32, amount: Double, date: Instant) {
        self.leadSource = leadSource
        self.amount = amount
        self.date = date
    }
}

/// The derived state of one current account record: when it churned, if it did.
public struct AccountFacts: Sendable, Equatable {
    public var source: UInt32
    public var account: UInt32
    public var churnedAt: Instant?
    public init(source: UInt32, account: UInt32, churnedAt: Instant?) {
        self.source = source
        self.account = account
        self.churnedAt = churnedAt
    }
}

/// One change of derived state: what a record contributed before and after an event.
public enum FactChange: Sendable, Equatable {
    case deal(old: DealFacts?, new: DealFacts?)
    case spend(old: SpendFacts?, new: SpendFacts?)
    case account(old: AccountFacts?, new: AccountFacts?)
}

/// The dimensions of METRICS.md §2, in topic spelling.
public enum Dimension: UInt8, Sendable, CaseIterable {
    case all = 0
    case pipeline, team, owner, leadSource, source

    public var name: String {
        switch self {
        case .all: "all"
        case .pipeline: "pipeline"
        case .team: "team"
        case .owner: "owner"
        case .leadSource: "lead_source"
        case .source: "source"
        }
    }
}
