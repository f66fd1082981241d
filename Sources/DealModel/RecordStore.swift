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
    /// One history entry reduced to what the furthest stage needs.
    struct HistoryEntry: Sendable, Equatable {
        var version: Int64
        var pipeline: UInt16
        var reached: Int16
    }

    /// What the store keeps per deal, 88 bytes with no pointer in it (docs/performance.md,
    /// "What a live deal costs"): the current version, deletion and digest; the highest
    /// deletion version; the current payload with its strings as `StringTable` ids and
    /// its instants as 72 bits each; and where its history frontier sits in the pool.
    /// The derived facts are not stored: `facts(of:)` computes them from this.
    struct DealSlot: Sendable {
        var version: Int64
        /// Highest deletion version seen; -1 when none.
        var boundary: Int64
        var digestHigh: UInt64
        var digestLow: UInt64
        var amount: Double
        var createdLow: UInt64
        var closedLow: UInt64
        var owner: UInt32
        var team: UInt32
        var leadSource: UInt32
        /// `StringTable` id of the account, or `DealFacts.noAccount`.
        var account: UInt32
        var historyStart: UInt32
        var pipeline: UInt16
        var stage: UInt16
        var historyCount: UInt16
        var historyCapacity: UInt16
        var createdHigh: Int8
        var closedHigh: Int8
        var status: UInt8
        var flags: UInt8

        static let deleted: UInt8 = 1
        static let hasPayload: UInt8 = 2
        static let hasClosed: UInt8 = 4

        var isDeleted: Bool { flags & DealSlot.deleted != 0 }
        var hasPayload: Bool { flags & DealSlot.hasPayload != 0 }
        var digest: Digest128 { Digest128(high: digestHigh, low: digestLow) }
        var createdAt: Instant { Instant(nanoseconds: Int128(createdHigh) << 64 | Int128(createdLow)) }
        var closedAt: Instant? {
            flags & DealSlot.hasClosed == 0 ? nil : Instant(nanoseconds: Int128(closedHigh) << 64 | Int128(closedLow))
        }
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
    /// `StringTable` id of each pipeline's name, by pipeline index.
    private let pipelineNames: [UInt32]
    private var dealKeys = RecordIndex()
    private var deals = ChunkedArray<DealSlot>()
    /// Every deal's history frontier: `historyCount` entries from `historyStart`, in
    /// blocks of `historyCapacity`. A block that outgrows its capacity moves to the end
    /// (doubling), leaving a hole; `compactHistory` squeezes the holes out once they are a
    /// quarter of the pool (doubling alone keeps them under half of it).
    private var historyVersions: [Int64] = []
    private var historyStages: [UInt32] = []
    private var historyHoles = 0
    /// How often the history pool was compacted (tests check that compaction ran).
    private(set) var historyCompactions = 0
    /// Holes below which the pool is never compacted (tests lower it).
    var historyCompactionMinimumHoles = 1 << 16
    private var liveDeals = 0
    private var spendKeys = RecordIndex()
    private var spends = ChunkedArray<SimpleRecord<SpendFacts>>()
    private var accountKeys = RecordIndex()
    private var accounts = ChunkedArray<SimpleRecord<AccountFacts>>()
    /// The last source interned: events come in runs of one source.
    private var lastSource: (name: String, id: UInt32)?

    public init(model: Model) {
        self.model = model
        var strings = StringTable()
        self.allKey = strings.intern("*")
        self.pipelineNames = model.pipelines.map { strings.intern($0.name) }
        self.strings = strings
    }

    /// Number of records (deals, spends, accounts), tombstones included.
    public var recordCount: Int { deals.count + spends.count + accounts.count }

    /// Deals whose current state is not a deletion.
    public var liveDealCount: Int { liveDeals }

    /// Bytes the record storage takes (record arrays, key indexes and arenas, the history
    /// pool), not counting the string table: for figures and tests.
    public var allocatedBytes: Int {
        deals.allocatedBytes + dealKeys.allocatedBytes + spends.allocatedBytes + spendKeys.allocatedBytes
            + accounts.allocatedBytes + accountKeys.allocatedBytes + historyVersions.capacity * 8
            + historyStages.capacity * 4
    }

    private mutating func sourceID(_ source: String) -> UInt32 {
        if let last = lastSource, last.name == source { return last.id }
        let id = strings.intern(source)
        lastSource = (source, id)
        return id
    }

    private mutating func sourceID(utf8 source: UnsafeRawBufferPointer) -> UInt32 {
        if let last = lastSource, StringTable.equal(last.name, source) { return last.id }
        let id = strings.intern(utf8: source)
        lastSource = (strings[id], id)
        return id
    }

    /// Resolves one validated event.
    public mutating func apply(_ event: Event) -> Resolution {
        let source = sourceID(event.source)
        var id = event.id
        return id.withUTF8 { idBytes in
            let id = UnsafeRawBufferPointer(idBytes)
            switch event.body {
            case .deal(let payload):
                return applyDeal(
                    isDeletion: false,
                    source: source,
                    id: id,
                    version: event.version,
                    digest: event.digest,
                    payload: payload
                )
            case .dealDeleted:
                return applyDeal(
                    isDeletion: true,
                    source: source,
                    id: id,
                    version: event.version,
                    digest: event.digest,
                    payload: DealPayload?.none
                )
            case .spend(let payload):
                let facts = SpendFacts(
                    leadSource: strings.intern(payload.leadSource),
                    amount: payload.amount,
                    date: payload.date
                )
                return RecordStore.applySimple(
                    id: id,
                    source: source,
                    version: event.version,
                    digest: event.digest,
                    facts: facts,
                    keys: &spendKeys,
                    table: &spends
                ) { .spend(old: $0, new: $1) }
            case .account(let payload):
                let facts = AccountFacts(
                    source: source,
                    account: strings.intern(event.id),
                    churnedAt: payload.churned ? payload.changedAt : nil
                )
                return RecordStore.applySimple(
                    id: id,
                    source: source,
                    version: event.version,
                    digest: event.digest,
                    facts: facts,
                    keys: &accountKeys,
                    table: &accounts
                ) { .account(old: $0, new: $1) }
            }
        }
    }

    /// Resolves one event record decoded without strings (`EventDecoder.decodeFields`):
    /// the same resolution, and the same store, as `apply(fields.event(model:))`, with
    /// every string interned from the record's bytes. Without `derivingChange` a deal's
    /// resolution has no `change` (what a replay needs: the same store, less work).
    public mutating func apply(_ fields: RecordFields, derivingChange: Bool = true) -> Resolution {
        fields.bytes.withUnsafeBytes { apply(fields, in: $0, derivingChange: derivingChange) }
    }

    /// `apply(_:derivingChange:)` for fields decoded in place (`EventDecoder.decodeFields(
    /// record:at:)`): `raw` is the buffer their spans index.
    public mutating func apply(
        _ fields: RecordFields,
        in raw: UnsafeRawBufferPointer,
        derivingChange: Bool = true
    ) -> Resolution {
        let source = sourceID(utf8: RecordFields.slice(raw, fields.source))
        let id = RecordFields.slice(raw, fields.id)
        switch fields.kind {
        case .deal:
            return applyDeal(
                isDeletion: false,
                source: source,
                id: id,
                version: fields.version,
                digest: fields.digest,
                payload: RecordDeal(fields: fields, raw: raw),
                derivingChange: derivingChange
            )
        case .dealDeleted:
            return applyDeal(
                isDeletion: true,
                source: source,
                id: id,
                version: fields.version,
                digest: fields.digest,
                payload: RecordDeal?.none,
                derivingChange: derivingChange
            )
        case .spend:
            let facts = SpendFacts(
                leadSource: strings.intern(utf8: RecordFields.slice(raw, fields.leadSource)),
                amount: fields.amount,
                date: fields.date
            )
            return RecordStore.applySimple(
                id: id,
                source: source,
                version: fields.version,
                digest: fields.digest,
                facts: facts,
                keys: &spendKeys,
                table: &spends
            ) { .spend(old: $0, new: $1) }
        case .account:
            let facts = AccountFacts(
                source: source,
                account: strings.intern(utf8: id),
                churnedAt: fields.churned ? fields.changedAt : nil
            )
            return RecordStore.applySimple(
                id: id,
                source: source,
                version: fields.version,
                digest: fields.digest,
                facts: facts,
                keys: &accountKeys,
                table: &accounts
            ) { .account(old: $0, new: $1) }
        }
    }

    private static func applySimple<Facts: Equatable>(
        id: UnsafeRawBufferPointer,
        source: UInt32,
        version: Int64,
        digest: Digest128,
        facts: Facts,
        keys: inout RecordIndex,
        table: inout ChunkedArray<SimpleRecord<Facts>>,
        change: (Facts?, Facts?) -> FactChange
    ) -> Resolution {
        guard let index = keys.find(source: source, id) else {
            _ = keys.insert(source: source, id)
            table.append(SimpleRecord(version: version, digest: digest, facts: facts))
            return Resolution(outcome: .applied, changedState: true, change: change(nil, facts))
        }
        let current = table[index]
        if current.digest == digest { return Resolution(outcome: .duplicate, changedState: false, change: nil) }
        guard version > current.version else {
            return Resolution(outcome: .stale, changedState: false, change: nil)
        }
        table[index] = SimpleRecord(version: version, digest: digest, facts: facts)
        return Resolution(
            outcome: .applied,
            changedState: true,
            change: current.facts == facts ? nil : change(current.facts, facts)
        )
    }

    /// Writes the payload's fields into the slot (the strings interned).
    private mutating func store<P: DealPayloadSource>(_ payload: P, into d: inout DealSlot) {
        d.flags |= DealSlot.hasPayload
        d.pipeline = UInt16(payload.pipeline)
        d.stage = UInt16(payload.stage)
        d.status = payload.status.rawValue
        d.amount = payload.amount
        (d.owner, d.team, d.leadSource, d.account) = payload.internStrings(&strings)
        (d.createdHigh, d.createdLow) = RecordStore.split(payload.createdAt)
        if let closed = payload.closedAt {
            d.flags |= DealSlot.hasClosed
            (d.closedHigh, d.closedLow) = RecordStore.split(closed)
        } else {
            d.flags &= ~DealSlot.hasClosed
            (d.closedHigh, d.closedLow) = (0, 0)
        }
    }

    /// An instant as 72 bits: every instant of years 0001–9999 is within ±2^68 ns.
    static func split(_ instant: Instant) -> (Int8, UInt64) {
        let high = instant.nanoseconds >> 64
        precondition(high >= -128 && high <= 127, "instants are within years 0001-9999")
        return (Int8(high), UInt64(truncatingIfNeeded: instant.nanoseconds))
    }

    private static func emptySlot(version: Int64, digest: Digest128) -> DealSlot {
        DealSlot(
            version: version,
            boundary: -1,
            digestHigh: digest.high,
            digestLow: digest.low,
            amount: 0,
            createdLow: 0,
            closedLow: 0,
            owner: 0,
            team: 0,
            leadSource: 0,
            account: DealFacts.noAccount,
            historyStart: 0,
            pipeline: 0,
            stage: 0,
            historyCount: 0,
            historyCapacity: 0,
            createdHigh: 0,
            closedHigh: 0,
            status: 0,
            flags: 0
        )
    }

    /// Resolves a deal event or deletion (`payload` nil) for the deal `(source, id)`.
    /// Without `derivingChange` the resolution has no `change` (a replay, whose changes
    /// nobody reads, skips deriving the facts before and after).
    private mutating func applyDeal<P: DealPayloadSource>(
        isDeletion: Bool,
        source: UInt32,
        id: UnsafeRawBufferPointer,
        version: Int64,
        digest: Digest128,
        payload: P?,
        derivingChange: Bool = true
    ) -> Resolution {
        guard let index = dealKeys.find(source: source, id) else {
            var d = RecordStore.emptySlot(version: version, digest: digest)
            if isDeletion {
                d.flags = DealSlot.deleted
                d.boundary = version
            }
            if let payload {
                store(payload, into: &d)
                d.historyStart = UInt32(historyVersions.count)
                d.historyCapacity = 1
                d.historyCount = 1
                historyVersions.append(version)
                historyStages.append(RecordStore.stage(payload, model))
            }
            _ = dealKeys.insert(source: source, id)
            deals.append(d)
            guard derivingChange else {
                if RecordStore.isLive(d) { liveDeals += 1 }
                return Resolution(outcome: .applied, changedState: true, change: nil)
            }
            let facts = facts(of: d, source: source)
            if facts != nil { liveDeals += 1 }
            return Resolution(outcome: .applied, changedState: true, change: facts.map { .deal(old: nil, new: $0) })
        }
        var d = deals[index]
        if d.digestHigh == digest.high && d.digestLow == digest.low {
            return Resolution(outcome: .duplicate, changedState: false, change: nil)
        }
        let wasLive = RecordStore.isLive(d)
        let old = derivingChange ? facts(of: d, source: source) : nil

        let becomesCurrent = version > d.version || (version == d.version && isDeletion && !d.isDeleted)
        var changed = becomesCurrent
        if isDeletion {
            if version > d.boundary {
                d.boundary = version
                removeHistory(&d) { v, _ in v <= version }
                // A later boundary changes what future stale events may add: keep it even
                // when the history did not shrink.
                changed = true
            }
        } else if let payload, version > d.boundary {
            changed = insertHistory(&d, version: version, stage: RecordStore.stage(payload, model)) || changed
        }
        guard changed else { return Resolution(outcome: .stale, changedState: false, change: nil) }
        if becomesCurrent {
            d.version = version
            d.digestHigh = digest.high
            d.digestLow = digest.low
            if isDeletion {
                d.flags = DealSlot.deleted
            } else if let payload {
                d.flags = 0
                store(payload, into: &d)
            }
        }
        deals[index] = d
        if historyHoles > historyCompactionMinimumHoles && historyHoles * 4 > historyVersions.count {
            compactHistory()
        }
        // Compaction may have moved the slot's history: read it back. (Into a local first:
        // `facts(of: deals[index], …)` made the compiler copy the whole store per event,
        // about a third of the replay's resolving time.)
        let stored = deals[index]
        liveDeals += (RecordStore.isLive(stored) ? 1 : 0) - (wasLive ? 1 : 0)
        guard derivingChange else {
            return Resolution(outcome: becomesCurrent ? .applied : .stale, changedState: true, change: nil)
        }
        let new = facts(of: stored, source: source)
        let change: FactChange? = old == new ? nil : .deal(old: old, new: new)
        return Resolution(outcome: becomesCurrent ? .applied : .stale, changedState: true, change: change)
    }

    /// A history entry's pipeline and reached stage in one word.
    private static func stage<P: DealPayloadSource>(_ payload: P, _ model: Model) -> UInt32 {
        let reached = payload.status == .won ? model.pipelines[payload.pipeline].lastIndex : payload.stage
        return pack(pipeline: UInt16(payload.pipeline), reached: Int16(reached))
    }

    private static func pack(pipeline: UInt16, reached: Int16) -> UInt32 {
        UInt32(pipeline) << 16 | UInt32(UInt16(bitPattern: reached))
    }

    private static func unpack(_ stage: UInt32) -> (pipeline: UInt16, reached: Int16) {
        (UInt16(stage >> 16), Int16(bitPattern: UInt16(truncatingIfNeeded: stage)))
    }

    /// Drops the deal's history entries for which `drop(version, stage)` holds.
    private mutating func removeHistory(_ d: inout DealSlot, where drop: (Int64, UInt32) -> Bool) {
        let start = Int(d.historyStart)
        var kept = 0
        for i in start..<start + Int(d.historyCount) where !drop(historyVersions[i], historyStages[i]) {
            historyVersions[start + kept] = historyVersions[i]
            historyStages[start + kept] = historyStages[i]
            kept += 1
        }
        d.historyCount = UInt16(kept)
    }

    /// Adds a history entry unless another entry of the same pipeline dominates it
    /// (a version at least as high that reached at least as far); drops the entries it
    /// dominates. Returns whether the frontier changed.
    private mutating func insertHistory(_ d: inout DealSlot, version: Int64, stage: UInt32) -> Bool {
        let (pipeline, reached) = RecordStore.unpack(stage)
        let start = Int(d.historyStart)
        for i in start..<start + Int(d.historyCount) {
            let (p, r) = RecordStore.unpack(historyStages[i])
            if p == pipeline && historyVersions[i] >= version && r >= reached { return false }
        }
        removeHistory(&d) { v, s in
            let (p, r) = RecordStore.unpack(s)
            return p == pipeline && v <= version && r <= reached
        }
        if d.historyCount == d.historyCapacity {
            // Move the block to the end with twice the room; its old place is a hole.
            let capacity = max(1, Int(d.historyCapacity) * 2)
            let newStart = historyVersions.count
            for i in start..<start + Int(d.historyCount) {
                historyVersions.append(historyVersions[i])
                historyStages.append(historyStages[i])
            }
            for _ in Int(d.historyCount)..<capacity {
                historyVersions.append(0)
                historyStages.append(0)
            }
            precondition(capacity <= Int(UInt16.max), "a history frontier has at most one entry per stage")
            historyHoles += Int(d.historyCapacity)
            d.historyStart = UInt32(newStart)
            d.historyCapacity = UInt16(capacity)
        }
        let at = Int(d.historyStart) + Int(d.historyCount)
        historyVersions[at] = version
        historyStages[at] = stage
        d.historyCount += 1
        return true
    }

    /// Rewrites the history pool without holes, in deal order, each block at its count.
    /// Runs when the holes are a quarter of the pool: its cost (one pass over the deals
    /// and the pool) is amortized over the block moves that made them.
    private mutating func compactHistory() {
        var versions: [Int64] = []
        var stages: [UInt32] = []
        let live = historyVersions.count - historyHoles
        versions.reserveCapacity(live + live / 4)
        stages.reserveCapacity(live + live / 4)
        for i in 0..<deals.count {
            var d = deals[i]
            let start = Int(d.historyStart)
            let newStart = versions.count
            for k in start..<start + Int(d.historyCount) {
                versions.append(historyVersions[k])
                stages.append(historyStages[k])
            }
            if d.historyStart != UInt32(newStart) || d.historyCapacity != d.historyCount {
                d.historyStart = UInt32(newStart)
                d.historyCapacity = d.historyCount
                deals[i] = d
            }
        }
        historyVersions = versions
        historyStages = stages
        historyHoles = 0
        historyCompactions += 1
    }

    /// Whether `facts(of: d, …)` is not nil: the deal is not deleted and has a payload
    /// above its deletions.
    @inline(__always)
    static func isLive(_ d: DealSlot) -> Bool { !d.isDeleted && d.hasPayload && d.version > d.boundary }

    /// The derived facts of a deal slot, or nil when it is deleted, has no payload, or
    /// its payload is at or below a deletion.
    func facts(of d: DealSlot, source: UInt32) -> DealFacts? {
        guard RecordStore.isLive(d) else { return nil }
        let pipeline = d.pipeline
        let status = DealStatus(rawValue: d.status)!
        var furthest = Int16(status == .won ? model.pipelines[Int(pipeline)].lastIndex : Int(d.stage))
        let start = Int(d.historyStart)
        for i in start..<start + Int(d.historyCount) {
            let (p, r) = RecordStore.unpack(historyStages[i])
            if p == pipeline && r > furthest { furthest = r }
        }
        return DealFacts(
            source: source,
            pipeline: pipelineNames[Int(pipeline)],
            owner: d.owner,
            team: d.team,
            leadSource: d.leadSource,
            account: d.account,
            status: status,
            pipelineIndex: pipeline,
            furthest: furthest,
            amount: d.amount,
            createdAt: d.createdAt,
            closedAt: d.closedAt
        )
    }

    /// Every current fact, as additions: what a (re)started worker is rebuilt from.
    public func allFacts() -> [FactChange] {
        var out: [FactChange] = []
        out.reserveCapacity(liveDeals + spends.count + accounts.count)
        for i in 0..<deals.count {
            if let f = facts(of: deals[i], source: dealKeys.source(of: i)) { out.append(.deal(old: nil, new: f)) }
        }
        for i in 0..<spends.count { out.append(.spend(old: nil, new: spends[i].facts)) }
        for i in 0..<accounts.count { out.append(.account(old: nil, new: accounts[i].facts)) }
        return out
    }
}

/// What the record store reads of a deal event's payload, from an `Event` (its strings)
/// or from an event record's bytes (`RecordFields`), so that resolving a deal is written
/// once for both.
protocol DealPayloadSource {
    var pipeline: Int { get }
    var stage: Int { get }
    var status: DealStatus { get }
    /// In the reporting currency.
    var amount: Double { get }
    var createdAt: Instant { get }
    var closedAt: Instant? { get }
    /// Owner, team, lead source and account (`DealFacts.noAccount` when there is none) as
    /// `StringTable` ids, interned in that order.
    func internStrings(_ strings: inout StringTable) -> (UInt32, UInt32, UInt32, UInt32)
}

extension DealPayload: DealPayloadSource {
    func internStrings(_ strings: inout StringTable) -> (UInt32, UInt32, UInt32, UInt32) {
        let owner = strings.intern(owner)
        let team = strings.intern(team)
        let leadSource = strings.intern(leadSource)
        return (owner, team, leadSource, account.isEmpty ? DealFacts.noAccount : strings.intern(account))
    }
}

/// A deal record's payload read in place (valid inside `fields.bytes.withUnsafeBytes`).
struct RecordDeal: DealPayloadSource {
    let fields: RecordFields
    let raw: UnsafeRawBufferPointer
    var pipeline: Int { fields.pipeline }
    var stage: Int { fields.stage }
    var status: DealStatus { fields.status }
    var amount: Double { fields.amount }
    var createdAt: Instant { fields.createdAt }
    var closedAt: Instant? { fields.closedAt }

    func internStrings(_ strings: inout StringTable) -> (UInt32, UInt32, UInt32, UInt32) {
        let owner = strings.intern(utf8: RecordFields.slice(raw, fields.owner))
        let team = strings.intern(utf8: RecordFields.slice(raw, fields.team))
        let leadSource = strings.intern(utf8: RecordFields.slice(raw, fields.leadSource))
        let account =
            fields.account.count == 0
            ? DealFacts.noAccount : strings.intern(utf8: RecordFields.slice(raw, fields.account))
        return (owner, team, leadSource, account)
    }
}

// MARK: - Checkpoints

extension RecordStore {
    static let checkpointFormat: UInt32 = 1

    /// The store as bytes: what a checkpoint holds so that a restart need not replay the
    /// whole history. Derived facts are not written; they are recomputed on load.
    public func encoded() -> [UInt8] {
        var w = BinaryWriter(capacity: 64 + deals.count * 120 + (spends.count + accounts.count) * 64)
        w.u32(RecordStore.checkpointFormat)
        w.u64(UInt64(deals.count))
        for i in 0..<deals.count {
            let r = deals[i]
            w.string(strings[dealKeys.source(of: i)])
            w.bytes(dealKeys.id(of: i))
            w.u64(UInt64(bitPattern: r.version))
            w.u8(r.isDeleted ? 1 : 0)
            w.u64(r.digestHigh)
            w.u64(r.digestLow)
            w.u64(UInt64(bitPattern: r.boundary))
            w.u32(UInt32(r.historyCount))
            let start = Int(r.historyStart)
            for k in start..<start + Int(r.historyCount) {
                let (pipeline, reached) = RecordStore.unpack(historyStages[k])
                w.u64(UInt64(bitPattern: historyVersions[k]))
                w.u16(pipeline)
                w.u16(UInt16(bitPattern: reached))
            }
            if r.hasPayload {
                w.u8(1)
                w.u16(r.pipeline)
                w.u16(r.stage)
                w.u8(r.status)
                w.f64(r.amount)
                w.string(strings[r.owner])
                w.string(strings[r.team])
                w.string(strings[r.leadSource])
                w.string(r.account == DealFacts.noAccount ? "" : strings[r.account])
                w.i128(r.createdAt.nanoseconds)
                let closed = r.closedAt
                w.u8(closed == nil ? 0 : 1)
                if let closed { w.i128(closed.nanoseconds) }
            } else {
                w.u8(0)
            }
        }
        w.u64(UInt64(spends.count))
        for i in 0..<spends.count {
            let r = spends[i]
            w.string(strings[spendKeys.source(of: i)])
            w.bytes(spendKeys.id(of: i))
            w.u64(UInt64(bitPattern: r.version))
            w.u64(r.digest.high)
            w.u64(r.digest.low)
            w.string(strings[r.facts.leadSource])
            w.f64(r.facts.amount)
            w.i128(r.facts.date.nanoseconds)
        }
        w.u64(UInt64(accounts.count))
        for i in 0..<accounts.count {
            let r = accounts[i]
            w.string(strings[accountKeys.source(of: i)])
            w.bytes(accountKeys.id(of: i))
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
        func key(_ what: String) throws(BinaryDecodingError) -> (source: UInt32, id: [UInt8]) {
            let source = try r.string("\(what) source")
            let id = try r.bytes("\(what) id")
            guard !id.isEmpty, id.count <= EventDecoder.maximumIdentifierBytes else {
                throw BinaryDecodingError(
                    "checkpoint \(what) id of \(id.count) bytes (1...\(EventDecoder.maximumIdentifierBytes))"
                )
            }
            return (strings.intern(source), id)
        }
        func instant(_ what: String) throws(BinaryDecodingError) -> Instant {
            let instant = Instant(nanoseconds: try r.i128(what))
            guard (-128...127).contains(instant.nanoseconds >> 64) else {
                throw BinaryDecodingError("checkpoint \(what) outside years 0001-9999")
            }
            return instant
        }
        let dealCount = try r.u64("deal count")
        for _ in 0..<dealCount {
            let (source, id) = try key("deal")
            let version = Int64(bitPattern: try r.u64("version"))
            let deleted = try r.u8("deleted") != 0
            let digest = Digest128(high: try r.u64("digest"), low: try r.u64("digest"))
            var d = RecordStore.emptySlot(version: version, digest: digest)
            d.boundary = Int64(bitPattern: try r.u64("boundary"))
            if deleted { d.flags = DealSlot.deleted }
            let historyCount = Int(try r.u32("history count"))
            guard historyCount <= Int(UInt16.max) else {
                throw BinaryDecodingError("checkpoint history of \(historyCount) entries")
            }
            d.historyStart = UInt32(historyVersions.count)
            d.historyCount = UInt16(historyCount)
            d.historyCapacity = UInt16(historyCount)
            for _ in 0..<historyCount {
                historyVersions.append(Int64(bitPattern: try r.u64("history version")))
                let pipeline = try r.u16("pipeline")
                let reached = Int16(bitPattern: try r.u16("reached"))
                guard Int(pipeline) < model.pipelines.count else {
                    throw BinaryDecodingError("checkpoint does not match the model (history pipeline \(pipeline))")
                }
                historyStages.append(RecordStore.pack(pipeline: pipeline, reached: reached))
            }
            if try r.u8("has payload") != 0 {
                let pipeline = Int(try r.u16("pipeline"))
                let stage = Int(try r.u16("stage"))
                guard pipeline < model.pipelines.count, stage < model.pipelines[pipeline].stages.count,
                    let status = DealStatus(rawValue: try r.u8("status"))
                else {
                    let name = String(decoding: id, as: UTF8.self)
                    throw BinaryDecodingError("checkpoint does not match the model (deal \(strings[source])/\(name))")
                }
                let amount = try r.f64("amount")
                let owner = try r.string("owner")
                let team = try r.string("team")
                let lead = try r.string("lead_source")
                let account = try r.string("account")
                let created = try instant("created_at")
                let closed = try r.u8("has closed_at") != 0 ? try instant("closed_at") : nil
                store(
                    DealPayload(
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
                    ),
                    into: &d
                )
            }
            let index = id.withUnsafeBytes { dealKeys.find(source: source, $0) }
            guard index == nil else { throw BinaryDecodingError("checkpoint repeats the deal \(strings[source])") }
            _ = id.withUnsafeBytes { dealKeys.insert(source: source, $0) }
            deals.append(d)
            if facts(of: d, source: source) != nil { liveDeals += 1 }
        }
        for _ in 0..<(try r.u64("spend count")) {
            let (source, id) = try key("spend")
            let version = Int64(bitPattern: try r.u64("version"))
            let digest = Digest128(high: try r.u64("digest"), low: try r.u64("digest"))
            let facts = SpendFacts(
                leadSource: strings.intern(try r.string("lead_source")),
                amount: try r.f64("amount"),
                date: Instant(nanoseconds: try r.i128("date"))
            )
            guard id.withUnsafeBytes({ spendKeys.find(source: source, $0) }) == nil else {
                throw BinaryDecodingError("checkpoint repeats the spend \(strings[source])")
            }
            _ = id.withUnsafeBytes { spendKeys.insert(source: source, $0) }
            spends.append(SimpleRecord(version: version, digest: digest, facts: facts))
        }
        for _ in 0..<(try r.u64("account count")) {
            let (source, id) = try key("account")
            let version = Int64(bitPattern: try r.u64("version"))
            let digest = Digest128(high: try r.u64("digest"), low: try r.u64("digest"))
            let churned = try r.u8("churned") != 0 ? Instant(nanoseconds: try r.i128("churned_at")) : nil
            let facts = AccountFacts(
                source: source,
                account: strings.intern(String(decoding: id, as: UTF8.self)),
                churnedAt: churned
            )
            guard id.withUnsafeBytes({ accountKeys.find(source: source, $0) }) == nil else {
                throw BinaryDecodingError("checkpoint repeats the account \(strings[source])")
            }
            _ = id.withUnsafeBytes { accountKeys.insert(source: source, $0) }
            accounts.append(SimpleRecord(version: version, digest: digest, facts: facts))
        }
        guard r.isAtEnd else { throw BinaryDecodingError("trailing bytes after the checkpoint") }
    }
}
