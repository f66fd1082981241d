/// A vendor-neutral field of a deal, before the mapping turns vendor ids into model ids.
public enum DealField: String, CaseIterable, Sendable, Hashable {
    case pipeline, stage, status, amount, currency, owner, account
    case createdAt = "created_at"
    case closedAt = "closed_at"
    case leadSource = "lead_source"
}

/// What one vendor event says about one deal: some fields changed, or the deal was
/// deleted or restored, at a vendor version.
///
/// Why it exists: the three vendors say very different things (HubSpot one property per
/// event, Salesforce only the changed fields, Pipedrive the whole deal), so each
/// translator reduces its payload to these changes and one `DealAssembler` turns the
/// accumulated state into complete dealstream events.
public struct DealChange: Sendable, Equatable {
    public enum Action: Sendable, Equatable {
        /// Fields set (a nil value clears a field). An empty set still says the deal exists.
        case upsert([DealField: String?])
        case delete
        /// The deal is back (HubSpot `deal.restore`, Salesforce `UNDELETE`), possibly with fields.
        case restore([DealField: String?])
    }

    /// The vendor's record id (HubSpot objectId, Pipedrive deal id, Salesforce record id).
    public var recordID: String
    /// The vendor's ordering of changes: HubSpot `occurredAt` (ms), Pipedrive `meta.timestamp`
    /// (ms), Salesforce `commitNumber`. Equal for a retried delivery.
    public var version: UInt64
    /// When it happened in the CRM, RFC 3339, when the vendor says.
    public var occurredAt: String?
    public var action: Action

    public init(recordID: String, version: UInt64, occurredAt: String?, action: Action) {
        self.recordID = recordID
        self.version = version
        self.occurredAt = occurredAt
        self.action = action
    }
}

/// The changes one webhook request carries, and what it said that is not a change.
public struct Translation: Sendable, Equatable {
    public var changes: [DealChange] = []
    /// Things an operator must act on (Salesforce GAP events), logged and answered.
    public var warnings: [String] = []
    /// Events of other objects or kinds that the connector does not use.
    public var ignored = 0
    public init() {}
}
