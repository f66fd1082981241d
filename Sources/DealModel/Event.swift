/// What a record is (PROTOCOL.md §1). `deal` and `dealDeleted` share the family `deal`.
public enum EventKind: UInt8, Sendable {
    case deal = 0
    case dealDeleted = 1
    case spend = 2
    case account = 3

    public var family: RecordFamily {
        switch self {
        case .deal, .dealDeleted: .deal
        case .spend: .spend
        case .account: .account
        }
    }
}

/// The families records are keyed by, with `(source, id)`.
public enum RecordFamily: UInt8, Sendable, Hashable {
    case deal = 0
    case spend = 1
    case account = 2
}

/// A deal's `status`: open, or closed won or lost (the closed cohort).
public enum DealStatus: UInt8, Sendable {
    case open = 0
    case won = 1
    case lost = 2
}

/// A validated deal payload, already in model terms: pipeline and stage as indexes,
/// the amount in the reporting currency, missing keys resolved to `unknown`.
public struct DealPayload: Sendable, Equatable {
    public var pipeline: Int
    public var stage: Int
    public var status: DealStatus
    /// `amount × fx[currency]`.
    public var amount: Double
    public var owner: String
    public var team: String
    public var leadSource: String
    /// Empty when the deal has no account.
    public var account: String
    public var createdAt: Instant
    public var closedAt: Instant?
    /// The event's own `amount` and `currency`, before conversion: what the event log
    /// keeps, so that a replay converts under the model of the day, as it decodes.
    public var rawAmount: Double = 0
    public var currency: String = ""

    /// The stage index this event shows the deal reached: the last stage when won.
    public func reachedIndex(in model: Model) -> Int {
        status == .won ? model.pipelines[pipeline].lastIndex : stage
    }
}

/// A validated spend record: marketing cost of a channel on a day, in the reporting
/// currency (the denominator of ROI).
public struct SpendPayload: Sendable, Equatable {
    public var leadSource: String
    public var amount: Double
    /// The first instant of the spend's UTC day.
    public var date: Instant
    /// The event's own `amount` and `currency`, before conversion (see `DealPayload`).
    public var rawAmount: Double = 0
    public var currency: String = ""
}

/// A validated account record: whether the customer churned, and when (retention).
public struct AccountPayload: Sendable, Equatable {
    public var churned: Bool
    public var changedAt: Instant
}

/// One validated event, ready to be resolved against the record store.
public struct Event: Sendable, Equatable {
    public enum Body: Sendable, Equatable {
        case deal(DealPayload)
        case dealDeleted
        case spend(SpendPayload)
        case account(AccountPayload)
    }

    public var kind: EventKind
    public var source: String
    public var id: String
    public var version: Int64
    public var body: Body
    /// Digest of the event's canonical JSON: equal digests mean equal JSON values.
    public var digest: Digest128
}

/// Why an event was rejected; `field` is the JSON path of the offending field.
public struct EventRejection: Error, Sendable, Equatable, CustomStringConvertible {
    public var field: String
    public var reason: String
    public init(_ field: String, _ reason: String) {
        self.field = field
        self.reason = reason
    }
    public var description: String { "\(field): \(reason)" }
}
