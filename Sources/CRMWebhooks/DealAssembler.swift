import DealModel

/// What the connector knows about one vendor deal: each field with the vendor version
/// that set it, deletions, and what it last sent.
///
/// Why it exists: HubSpot sends one property per event and Salesforce only the changed
/// fields, so a complete dealstream `deal` event can only be made from the state built up
/// from earlier events. Keeping the version per field makes late (out-of-order)
/// deliveries harmless: an older value never overwrites a newer one.
public struct DealState: Sendable, Equatable {
    public struct Stamped: Sendable, Equatable {
        public var value: String?
        public var version: UInt64
        public init(value: String?, version: UInt64) {
            self.value = value
            self.version = version
        }
    }
    public var fields: [DealField: Stamped] = [:]
    /// The vendor stage of the last open stage seen (the stage a lost deal is reported at).
    public var lastOpenStage: Stamped?
    /// The highest vendor version of a deletion.
    public var deletedVersion: UInt64?
    /// The highest vendor version of a change that says the deal exists (create, update, restore).
    public var aliveVersion: UInt64?
    /// The vendor version the last sent event was based on, and how many later changes
    /// with no newer vendor version followed it (see `DealAssembler`).
    public var sentBase: UInt64 = 0
    public var sentLate: UInt64 = 0
    public init() {}

    /// Whether the latest word on the deal is that it exists.
    public var isAlive: Bool {
        guard let alive = aliveVersion else { return false }
        guard let deleted = deletedVersion else { return true }
        return alive > deleted
    }
}

/// Turns `DealChange`s into complete dealstream events, keeping each deal's `DealState`.
///
/// Event versions: a dealstream record keeps the event with the highest version, and two
/// different payloads with one version are a connector bug. A deal event's version is
/// `base × 1000 + late`, `base` being the highest vendor version behind the state; `late`
/// counts changes that altered the state without a newer vendor version (a late,
/// out-of-order delivery), so the newer knowledge still wins. A retried delivery alters
/// nothing and yields the same event again: a duplicate at the daemon. A deletion at
/// vendor version v is `v × 1000 + 999`, so it beats every state based on v or less.
public struct DealAssembler: Sendable {
    public let mapping: Mapping

    public init(mapping: Mapping) { self.mapping = mapping }

    /// The highest vendor version an event version can be made of: `v × 1000 + 999` is
    /// still an `Int64` (the daemon's version range).
    public static let maximumVendorVersion: UInt64 = (UInt64(Int64.max) - 999) / 1000

    /// The result of applying one change.
    public enum Outcome: Sendable, Equatable {
        /// A dealstream event (JSON) to send.
        case event([UInt8])
        /// The deal lacks fields the model requires (named); nothing is sent yet.
        case heldBack(missing: [String])
        /// Nothing to send (a change older than a deletion, a retry of a deletion).
        case nothing
    }

    /// Applies `change` to `state` and says what to send. Throws when the deal names a
    /// pipeline or stage the mapping does not know (the request is then refused whole).
    public func apply(_ change: DealChange, to state: inout DealState) throws(PayloadError) -> Outcome {
        let maxVersion = DealAssembler.maximumVendorVersion
        guard change.version <= maxVersion else {
            throw PayloadError(field: "version", reason: "vendor version \(change.version) is above \(maxVersion)")
        }
        switch change.action {
        case .delete:
            let isNew = state.deletedVersion.map { change.version > $0 } ?? true
            guard isNew else { return .nothing }
            state.deletedVersion = change.version
            var out = eventHead("deal_deleted", id: change.recordID, version: change.version * 1000 + 999)
            if let at = change.occurredAt {
                out += Array(",\"occurred_at\":".utf8)
                JSONWriter.appendString(at, to: &out)
            }
            out.append(UInt8(ascii: "}"))
            return .event(out)
        case .upsert(let values), .restore(let values):
            let before = state
            for (field, value) in values {
                if let old = state.fields[field], old.version > change.version { continue }
                state.fields[field] = DealState.Stamped(value: value, version: change.version)
                if field == .stage, let stage = value, isOpenStage(stage, in: state) {
                    if (state.lastOpenStage?.version ?? 0) <= change.version {
                        state.lastOpenStage = DealState.Stamped(value: stage, version: change.version)
                    }
                }
            }
            state.aliveVersion = max(state.aliveVersion ?? 0, change.version)
            guard state.isAlive else { return .nothing }
            let deal: [UInt8]
            switch try build(state, id: change.recordID) {
            case .failure(let missing): return .heldBack(missing: missing.fields)
            case .success(let built): deal = built
            }
            // Every field's version is that of a change, which also raised `aliveVersion`.
            let base = state.aliveVersion ?? 0
            if base > state.sentBase {
                state.sentBase = base
                state.sentLate = 0
            } else if before.fields != state.fields || before.aliveVersion != state.aliveVersion {
                // Newer knowledge without a newer vendor version: it must still win.
                state.sentLate = min(998, state.sentLate + 1)
            }
            var out = eventHead("deal", id: change.recordID, version: state.sentBase * 1000 + state.sentLate)
            out += Array(",\"deal\":".utf8)
            out += deal
            out.append(UInt8(ascii: "}"))
            return .event(out)
        }
    }

    /// `{"kind":…,"source":…,"id":…,"version":…` of an event (left open).
    private func eventHead(_ kind: String, id: String, version: UInt64) -> [UInt8] {
        var out = Array("{\"kind\":\"\(kind)\",\"source\":".utf8)
        JSONWriter.appendString(mapping.source, to: &out)
        out += Array(",\"id\":".utf8)
        JSONWriter.appendString(id, to: &out)
        out += Array(",\"version\":\(version)".utf8)
        return out
    }

    struct Missing: Error { var fields: [String] }

    private func isOpenStage(_ stage: String, in state: DealState) -> Bool {
        guard let pipelineID = state.fields[.pipeline]?.value, let p = mapping.pipeline(forVendorID: pipelineID) else {
            return false
        }
        return p.stages[stage] != nil && !p.wonStages.contains(stage) && !p.lostStages.contains(stage)
    }

    /// The `deal` object of a complete state, or the names of the missing fields.
    private func build(_ state: DealState, id: String) throws(PayloadError) -> Result<[UInt8], Missing> {
        func value(_ f: DealField) -> String? {
            guard let v = state.fields[f]?.value, !v.isEmpty else { return nil }
            return v
        }
        var missing: [String] = []
        guard let pipelineID = value(.pipeline) else { return .failure(Missing(fields: ["pipeline"])) }
        guard let pipeline = mapping.pipeline(forVendorID: pipelineID) else {
            throw PayloadError(
                field: "deal \(id).pipeline",
                reason: "vendor pipeline \"\(pipelineID)\" is not in the mapping"
            )
        }
        let stageID = value(.stage)
        var status = value(.status)
        if status == nil, let stageID {
            status =
                pipeline.wonStages.contains(stageID) ? "won" : pipeline.lostStages.contains(stageID) ? "lost" : "open"
        }
        if let s = status, !["open", "won", "lost"].contains(s) {
            throw PayloadError(field: "deal \(id).status", reason: "\"\(s)\" is not open, won or lost")
        }
        var stage: String?
        if let stageID {
            if let mapped = pipeline.stages[stageID] {
                stage = mapped
            } else if pipeline.wonStages.contains(stageID) || pipeline.lostStages.contains(stageID) || status != "open"
            {
                // The last open stage seen; failing that (a deal first seen closed) the
                // alphabetically first mapped stage, so the choice is at least stable.
                stage = state.lastOpenStage?.value.flatMap { pipeline.stages[$0] } ?? pipeline.stages.values.min()
            } else {
                throw PayloadError(
                    field: "deal \(id).stage",
                    reason: "vendor stage \"\(stageID)\" of pipeline \"\(pipelineID)\" is not in the mapping"
                )
            }
        } else {
            missing.append("stage")
        }
        let amountText = value(.amount)
        let amount = amountText.flatMap(Double.init)
        if amountText == nil { missing.append("amount") }
        if let amountText, amount == nil || !(amount!.isFinite) || amount! < 0 {
            throw PayloadError(field: "deal \(id).amount", reason: "\"\(amountText)\" is not a non-negative number")
        }
        let created = value(.createdAt)
        if created == nil { missing.append("created_at") }
        var closed: String?
        if status == "won" || status == "lost" {
            closed = value(.closedAt)
            if closed == nil { missing.append("closed_at") }
            // A vendor close *date* (midnight) can precede the creation time on the same day.
            if let c = closed, let cr = created, let cms = VendorTime.milliseconds(rfc3339: c),
                let crms = VendorTime.milliseconds(rfc3339: cr), cms < crms
            {
                closed = cr
            }
        }
        guard missing.isEmpty, let stage, let status, let amount, let created else {
            return .failure(Missing(fields: missing))
        }
        var out = Array("{\"pipeline\":".utf8)
        func field(_ name: String, _ v: String?) {
            out += Array(",\"\(name)\":".utf8)
            if let v { JSONWriter.appendString(v, to: &out) } else { out += Array("null".utf8) }
        }
        JSONWriter.appendString(pipeline.pipeline, to: &out)
        field("stage", stage)
        field("status", status)
        out += Array(",\"amount\":\(JSONWriter.number(amount))".utf8)
        let currency = value(.currency) ?? mapping.defaultCurrency
        if let known = mapping.knownCurrencies, !known.contains(currency) {
            throw PayloadError(field: "deal \(id).currency", reason: "no rate for \"\(currency)\" in the model")
        }
        field("currency", currency)
        let ownerID = value(.owner)
        let owner = ownerID.flatMap { mapping.owners[$0] }
        field("owner", owner?.owner ?? ownerID)
        field("team", owner?.team)
        field("lead_source", value(.leadSource))
        field("account", value(.account))
        field("created_at", created)
        field("closed_at", closed)
        out.append(UInt8(ascii: "}"))
        return .success(out)
    }
}
