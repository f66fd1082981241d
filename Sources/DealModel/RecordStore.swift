/// How an event was taken, as an ACK counts it.
public enum Outcome: Sendable, Equatable {
    case applied
    case duplicate
    case stale
}

/// The result of resolving one event against the store.
public struct Resolution: Sendable {
    public var outcome: Outcome
    /// Whether the store changed (an applied event, or a stale one that moves the
    /// history or the deletion boundary): only such events need to be made durable.
    public var changedState: Bool
    /// The change of derived facts, when there is one.
    public var change: FactChange?
}

/// The current state of every record, resolved from versions, deletions and history.
///
/// METRICS.md §1 in code: the highest version is current (at equal versions a deletion
/// beats a deal, otherwise the first received stays); a deal's history is every deal
/// event above its highest deletion version; the furthest stage is a maximum over that
/// history. The store is a pure function of the events' set (plus the first-received
/// tie rule), so replaying the durable log in order rebuilds it exactly.
public struct RecordStore: Sendable {
    struct RecordKey: Hashable, Sendable {
        var source: String
        var id: String
    }

    /// One history entry reduced to what the furthest stage needs.
    struct HistoryEntry: Sendable {
        var version: Int64
        var pipeline: UInt16
        var reached: Int16
    }

    struct DealRecord: Sendable {
        var version: Int64
        var deleted: Bool
        var digest: Digest128
        /// Highest deletion version seen; -1 when none.
        var boundary: Int64
        /// Pareto frontier of (version, reached) per pipeline: dominated entries dropped.
        var history: [HistoryEntry]
        var payload: DealPayload?
        var facts: DealFacts?
    }

    struct SimpleRecord<Facts: Sendable>: Sendable {
        var version: Int64
        var digest: Digest128
        var facts: Facts
    }

    public let model: Model
    public private(set) var strings = StringTable()
    /// `StringTable` id of `*`, the key of dimension `all`.
    public let allKey: UInt32
    private var deals: [RecordKey: DealRecord] = [:]
    private var spends: [RecordKey: SimpleRecord<SpendFacts>] = [:]
    private var accounts: [RecordKey: SimpleRecord<AccountFacts>] = [:]

    public init(model: Model) {
        self.model = model
        var strings = StringTable()
        self.allKey = strings.intern("*")
        for p in model.pipelines { _ = strings.intern(p.name) }
        self.strings = strings
    }

    /// Number of records (deals, spends, accounts), tombstones included.
    public var recordCount: Int { deals.count + spends.count + accounts.count }

    /// Deals whose current state is not a deletion (a scan: for figures, not the hot path).
    public var liveDealCount: Int { deals.values.reduce(0) { $0 + ($1.facts == nil ? 0 : 1) } }

    /// Resolves one validated event.
    public mutating func apply(_ event: Event) -> Resolution {
        let key = RecordKey(source: event.source, id: event.id)
        switch event.body {
        case .deal, .dealDeleted: return applyDeal(event, key: key)
        case .spend(let payload):
            let facts = SpendFacts(
                leadSource: strings.intern(payload.leadSource),
                amount: payload.amount,
                date: payload.date
            )
            return applySimple(event, key: key, facts: facts, table: &spends) { .spend(old: $0, new: $1) }
        case .account(let payload):
            let facts = AccountFacts(
                source: strings.intern(event.source),
                account: strings.intern(event.id),
                churnedAt: payload.churned ? payload.changedAt : nil
            )
            return applySimple(event, key: key, facts: facts, table: &accounts) { .account(old: $0, new: $1) }
        }
    }

    private func applySimple<Facts: Equatable>(
        _ event: Event,
        key: RecordKey,
        facts: Facts,
        table: inout [RecordKey: SimpleRecord<Facts>],
        change: (Facts?, Facts?) -> FactChange
    ) -> Resolution {
        guard let current = table[key] else {
            table[key] = SimpleRecord(version: event.version, digest: event.digest, facts: facts)
            return Resolution(outcome: .applied, changedState: true, change: change(nil, facts))
        }
        if current.digest == event.digest { return Resolution(outcome: .duplicate, changedState: false, change: nil) }
        guard event.version > current.version else {
            return Resolution(outcome: .stale, changedState: false, change: nil)
        }
        table[key] = SimpleRecord(version: event.version, digest: event.digest, facts: facts)
        return Resolution(
            outcome: .applied,
            changedState: true,
            change: current.facts == facts ? nil : change(current.facts, facts)
        )
    }

    private mutating func applyDeal(_ event: Event, key: RecordKey) -> Resolution {
        let isDeletion = event.kind == .dealDeleted
        var payload: DealPayload?
        if case .deal(let p) = event.body { payload = p }

        guard var record = deals[key] else {
            var record = DealRecord(
                version: event.version,
                deleted: isDeletion,
                digest: event.digest,
                boundary: isDeletion ? event.version : -1,
                history: [],
                payload: payload,
                facts: nil
            )
            if let payload { insertHistory(&record, version: event.version, payload: payload) }
            record.facts = facts(of: record, source: event.source)
            deals[key] = record
            return Resolution(
                outcome: .applied,
                changedState: true,
                change: record.facts.map { .deal(old: nil, new: $0) }
            )
        }
        if record.digest == event.digest { return Resolution(outcome: .duplicate, changedState: false, change: nil) }

        let becomesCurrent =
            event.version > record.version || (event.version == record.version && isDeletion && !record.deleted)
        var changed = becomesCurrent
        if isDeletion {
            if event.version > record.boundary {
                record.boundary = event.version
                let before = record.history.count
                record.history.removeAll { $0.version <= event.version }
                changed = changed || record.history.count != before || becomesCurrent
                // A later boundary changes what future stale events may add: keep it even
                // when the history did not shrink.
                changed = true
            }
        } else if let payload, event.version > record.boundary {
            changed = insertHistory(&record, version: event.version, payload: payload) || changed
        }
        if becomesCurrent {
            record.version = event.version
            record.deleted = isDeletion
            record.digest = event.digest
            record.payload = payload
        }
        guard changed else { return Resolution(outcome: .stale, changedState: false, change: nil) }
        let old = record.facts
        record.facts = facts(of: record, source: event.source)
        deals[key] = record
        let change: FactChange? = old == record.facts ? nil : .deal(old: old, new: record.facts)
        return Resolution(outcome: becomesCurrent ? .applied : .stale, changedState: true, change: change)
    }

    /// Adds a history entry unless another entry of the same pipeline dominates it
    /// (a version at least as high that reached at least as far); drops the entries it
    /// dominates. Returns whether the frontier changed.
    @discardableResult
    private func insertHistory(_ record: inout DealRecord, version: Int64, payload: DealPayload) -> Bool {
        let entry = HistoryEntry(
            version: version,
            pipeline: UInt16(payload.pipeline),
            reached: Int16(payload.reachedIndex(in: model))
        )
        if record.history.contains(where: {
            $0.pipeline == entry.pipeline && $0.version >= entry.version && $0.reached >= entry.reached
        }) {
            return false
        }
        record.history.removeAll {
            $0.pipeline == entry.pipeline && $0.version <= entry.version && $0.reached <= entry.reached
        }
        record.history.append(entry)
        return true
    }

    private mutating func facts(of record: DealRecord, source: String) -> DealFacts? {
        guard !record.deleted, let p = record.payload, record.version > record.boundary else { return nil }
        var furthest = Int16(p.reachedIndex(in: model))
        for h in record.history where h.pipeline == UInt16(p.pipeline) && h.reached > furthest {
            furthest = h.reached
        }
        return DealFacts(
            source: strings.intern(source),
            pipeline: strings.intern(model.pipelines[p.pipeline].name),
            owner: strings.intern(p.owner),
            team: strings.intern(p.team),
            leadSource: strings.intern(p.leadSource),
            account: p.account.isEmpty ? DealFacts.noAccount : strings.intern(p.account),
            status: p.status,
            pipelineIndex: UInt16(p.pipeline),
            furthest: furthest,
            amount: p.amount,
            createdAt: p.createdAt,
            closedAt: p.closedAt
        )
    }

    /// Every current fact, as additions: what a (re)started worker is rebuilt from.
    public func allFacts() -> [FactChange] {
        var out: [FactChange] = []
        out.reserveCapacity(recordCount)
        for record in deals.values { if let f = record.facts { out.append(.deal(old: nil, new: f)) } }
        for record in spends.values { out.append(.spend(old: nil, new: record.facts)) }
        for record in accounts.values { out.append(.account(old: nil, new: record.facts)) }
        return out
    }
}

// MARK: - Checkpoints

extension RecordStore {
    static let checkpointFormat: UInt32 = 1

    /// The store as bytes: what a checkpoint holds so that a restart need not replay the
    /// whole history. Derived facts are not written; they are recomputed on load.
    public func encoded() -> [UInt8] {
        var w = BinaryWriter(capacity: 64 + deals.count * 160 + (spends.count + accounts.count) * 64)
        w.u32(RecordStore.checkpointFormat)
        w.u64(UInt64(deals.count))
        for (key, r) in deals {
            w.string(key.source)
            w.string(key.id)
            w.u64(UInt64(bitPattern: r.version))
            w.u8(r.deleted ? 1 : 0)
            w.u64(r.digest.high)
            w.u64(r.digest.low)
            w.u64(UInt64(bitPattern: r.boundary))
            w.u32(UInt32(r.history.count))
            for h in r.history {
                w.u64(UInt64(bitPattern: h.version))
                w.u16(h.pipeline)
                w.u16(UInt16(bitPattern: h.reached))
            }
            if let p = r.payload {
                w.u8(1)
                w.u16(UInt16(p.pipeline))
                w.u16(UInt16(p.stage))
                w.u8(p.status.rawValue)
                w.f64(p.amount)
                w.string(p.owner)
                w.string(p.team)
                w.string(p.leadSource)
                w.string(p.account)
                w.i128(p.createdAt.nanoseconds)
                w.u8(p.closedAt == nil ? 0 : 1)
                if let c = p.closedAt { w.i128(c.nanoseconds) }
            } else {
                w.u8(0)
            }
        }
        w.u64(UInt64(spends.count))
        for (key, r) in spends {
            w.string(key.source)
            w.string(key.id)
            w.u64(UInt64(bitPattern: r.version))
            w.u64(r.digest.high)
            w.u64(r.digest.low)
            w.string(strings[r.facts.leadSource])
            w.f64(r.facts.amount)
            w.i128(r.facts.date.nanoseconds)
        }
        w.u64(UInt64(accounts.count))
        for (key, r) in accounts {
            w.string(key.source)
            w.string(key.id)
            w.u64(UInt64(bitPattern: r.version))
            w.u64(r.digest.high)
            w.u64(r.digest.low)
            w.u8(r.facts.churnedAt == nil ? 0 : 1)
            if let c = r.facts.churnedAt { w.i128(c.nanoseconds) }
        }
        return w.bytes
    }

    /// Rebuilds a store from `encoded()` bytes under `model`.
    public init(model: Model, encoded bytes: [UInt8]) throws(BinaryDecodingError) {
        self.init(model: model)
        var r = BinaryReader(bytes)
        let format = try r.u32("checkpoint format")
        guard format == RecordStore.checkpointFormat else {
            throw BinaryDecodingError("checkpoint format \(format) is not \(RecordStore.checkpointFormat)")
        }
        let dealCount = try r.u64("deal count")
        deals.reserveCapacity(Int(min(dealCount, 1 << 26)))
        for _ in 0..<dealCount {
            let source = try r.string("source")
            let id = try r.string("id")
            let version = Int64(bitPattern: try r.u64("version"))
            let deleted = try r.u8("deleted") != 0
            let digest = Digest128(high: try r.u64("digest"), low: try r.u64("digest"))
            let boundary = Int64(bitPattern: try r.u64("boundary"))
            var history: [HistoryEntry] = []
            for _ in 0..<(try r.u32("history count")) {
                history.append(
                    HistoryEntry(
                        version: Int64(bitPattern: try r.u64("history version")),
                        pipeline: try r.u16("pipeline"),
                        reached: Int16(bitPattern: try r.u16("reached"))
                    )
                )
            }
            var payload: DealPayload?
            if try r.u8("has payload") != 0 {
                let pipeline = Int(try r.u16("pipeline"))
                let stage = Int(try r.u16("stage"))
                guard pipeline < model.pipelines.count, stage < model.pipelines[pipeline].stages.count,
                    let status = DealStatus(rawValue: try r.u8("status"))
                else {
                    throw BinaryDecodingError("checkpoint does not match the model (deal \(source)/\(id))")
                }
                let amount = try r.f64("amount")
                let owner = try r.string("owner")
                let team = try r.string("team")
                let lead = try r.string("lead_source")
                let account = try r.string("account")
                let created = Instant(nanoseconds: try r.i128("created_at"))
                let closed = try r.u8("has closed_at") != 0 ? Instant(nanoseconds: try r.i128("closed_at")) : nil
                payload = DealPayload(
                    pipeline: pipeline,
                    stage: stage,
                    status: status,
                    amount: amount,
                    owner: owner,
                    team: team,
                    leadSource: lead,
                    account: account,
                    createdAt: created,
                    closedAt: closed
                )
            }
            var record = DealRecord(
                version: version,
                deleted: deleted,
                digest: digest,
                boundary: boundary,
                history: history,
                payload: payload,
                facts: nil
            )
            record.facts = facts(of: record, source: source)
            deals[RecordKey(source: source, id: id)] = record
        }
        for _ in 0..<(try r.u64("spend count")) {
            let key = RecordKey(source: try r.string("source"), id: try r.string("id"))
            let version = Int64(bitPattern: try r.u64("version"))
            let digest = Digest128(high: try r.u64("digest"), low: try r.u64("digest"))
            let facts = SpendFacts(
                leadSource: strings.intern(try r.string("lead_source")),
                amount: try r.f64("amount"),
                date: Instant(nanoseconds: try r.i128("date"))
            )
            spends[key] = SimpleRecord(version: version, digest: digest, facts: facts)
        }
        for _ in 0..<(try r.u64("account count")) {
            let key = RecordKey(source: try r.string("source"), id: try r.string("id"))
            let version = Int64(bitPattern: try r.u64("version"))
            let digest = Digest128(high: try r.u64("digest"), low: try r.u64("digest"))
            let churned = try r.u8("churned") != 0 ? Instant(nanoseconds: try r.i128("churned_at")) : nil
            let facts = AccountFacts(
                source: strings.intern(key.source),
                account: strings.intern(key.id),
                churnedAt: churned
            )
            accounts[key] = SimpleRecord(version: version, digest: digest, facts: facts)
        }
        guard r.isAtEnd else { throw BinaryDecodingError("trailing bytes after the checkpoint") }
    }
}
