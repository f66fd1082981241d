public import DealModel

/// The mergeable aggregates of one `(dimension, key, period)` cell.
///
/// Every field is a count or an exact sum, so retracting a record's old contribution and
/// adding its new one gives the same aggregates as any other order of the same records.
struct CellAggregates: Sendable {
    // created cohort
    var created: Int32 = 0
    var qualified: Int32 = 0
    var createdAmount = ExactSum()
    var amountSketch = LogSketch()
    /// stage_conversion: per pipeline, `reached[i]` = deals with furthest ≥ i
    /// (so `reached[0]` is the pipeline's created count); flattened, see `stageOffsets`.
    var reached: [Int32] = []
    // closed cohort
    var won: Int32 = 0
    var lost: Int32 = 0
    var wonAmount = ExactSum()
    var wonDurationNanoseconds: Int128 = 0
    var durationSketch = LogSketch()
    // spend (roi)
    var spendRecords: Int32 = 0
    var spend = ExactSum()
}

/// The incremental computation of one metric family on a set of partitions.
///
/// `apply` retracts a record's old facts and adds its new ones in every cell they touch
/// that this shard owns; `flush` renders the series of the cells changed since the last
/// flush and returns only those whose fields changed, plus removals. Nothing is ever
/// recomputed from scratch per event.
public struct MetricEngine: Sendable {
    public let family: MetricFamily
    public let model: Model
    /// The partitions this engine computes (see `Partitioning`); `restrict` shrinks it.
    public private(set) var assignment: PartitionSet
    let needsAmountSketch: Bool
    let needsDurationSketch: Bool
    let needsStages: Bool
    /// Which cohorts (METRICS.md §2) the family's series read; the other is not kept.
    let readsCreatedCohort: Bool
    let readsClosedCohort: Bool
    let readsCreatedAmount: Bool
    /// Bit per `Dimension` this family is published for.
    let dimensionMask: UInt8
    let stageOffsets: [Int]
    let stageSlots: Int

    private var cellIndex = CellTable()
    private var cellKeys: [CellKey] = []
    private var cells: [CellAggregates] = []
    /// Cells changed since the last flush: a flag per cell and their list (no hashing).
    private var dirtyFlags: [Bool] = []
    private var dirty: [Int] = []
    /// Per string id, a bit per dimension: whether this engine owns that key (0xFF: not yet known).
    private var ownership: [UInt8] = []
    private var published: [SeriesID: [(String, FieldValue)]] = [:]
    private var retention: RetentionEngine?

    struct CellKey: Hashable, Sendable {
        var dimension: Dimension
        var key: UInt32
        var period: Period

        /// The cell as one word: key, dimension, period (period ids stay below 2^24).
        var packed: UInt64 {
            UInt64(key) << 32 | UInt64(dimension.rawValue) << 24 | UInt64(UInt32(bitPattern: period.raw) & 0xFF_FFFF)
        }
    }

    public init(family: MetricFamily, model: Model, assignment: PartitionSet) {
        self.family = family
        self.model = model
        self.assignment = assignment
        let reads = family.reads
        needsAmountSketch = reads.amountSketch
        needsDurationSketch = reads.durationSketch
        needsStages = reads.stages == .all
        readsCreatedCohort = reads.createdCohort
        readsClosedCohort = reads.closedCohort
        readsCreatedAmount = reads.createdAmount
        dimensionMask = family.dimensions.reduce(0) { $0 | 1 << $1.rawValue }
        var offsets: [Int] = []
        var total = 0
        for p in model.pipelines {
            offsets.append(total)
            total += p.stages.count
        }
        stageOffsets = offsets
        stageSlots = total
    }

    /// Number of cells held (for memory figures).
    public var cellCount: Int { cells.count }

    private mutating func owns(_ dimension: Dimension, _ key: UInt32, strings: StringTable) -> Bool {
        let k = Int(key)
        if k >= ownership.count { ownership.append(contentsOf: repeatElement(0xFF, count: k - ownership.count + 1)) }
        if ownership[k] == 0xFF {
            var mask: UInt8 = 0
            for d in Dimension.allCases where assignment.owns(dimension: d, key: strings[key]) {
                mask |= 1 << d.rawValue
            }
            ownership[k] = mask
        }
        return ownership[k] & (1 << dimension.rawValue) != 0
    }

    private mutating func cell(_ key: CellKey) -> Int {
        let packed = key.packed
        if let i = cellIndex.find(packed) { return i }
        let i = cells.count
        cellIndex.insert(packed, i)
        cellKeys.append(key)
        dirtyFlags.append(false)
        var c = CellAggregates()
        if needsStages { c.reached = [Int32](repeating: 0, count: stageSlots) }
        cells.append(c)
        return i
    }

    /// Stops computing every partition not in `kept` (a move handed them to another
    /// worker): their cells and what was rendered of them are dropped, with no removals
    /// (their new owner publishes them). Linear in the cells held; runs once per move.
    public mutating func restrict(to kept: PartitionSet, strings: StringTable, allKey: UInt32) {
        precondition(kept.count == assignment.count, "partition count is fixed")
        assignment = kept
        ownership = []
        if family.reads.accounts {
            if !owns(.all, allKey, strings: strings) {
                retention = nil
                published = [:]
            }
            return
        }
        var remap = [Int](repeating: -1, count: cells.count)
        var keptKeys: [CellKey] = []
        var keptCells: [CellAggregates] = []
        var table = CellTable()
        for i in cells.indices where owns(cellKeys[i].dimension, cellKeys[i].key, strings: strings) {
            remap[i] = keptCells.count
            table.insert(cellKeys[i].packed, keptCells.count)
            keptKeys.append(cellKeys[i])
            keptCells.append(cells[i])
        }
        let wasDirty = dirty
        cellIndex = table
        cellKeys = keptKeys
        cells = keptCells
        dirtyFlags = [Bool](repeating: false, count: cells.count)
        dirty = []
        for i in wasDirty where remap[i] >= 0 { markDirty(remap[i]) }
        for id in published.keys where !owns(id.dimension, id.key, strings: strings) { published[id] = nil }
    }

    /// Applies one change of facts.
    public mutating func apply(_ change: FactChange, strings: StringTable, allKey: UInt32) {
        if family.reads.accounts {
            guard owns(.all, allKey, strings: strings) else { return }
            if retention == nil { retention = RetentionEngine(allKey: allKey) }
            retention!.apply(change)
            return
        }
        switch change {
        case .deal(let old, let new):
            if let old { applyDeal(old, sign: -1, strings: strings, allKey: allKey) }
            if let new { applyDeal(new, sign: 1, strings: strings, allKey: allKey) }
        case .spend(let old, let new):
            guard family.reads.spend else { return }
            if let old { applySpend(old, sign: -1, strings: strings, allKey: allKey) }
            if let new { applySpend(new, sign: 1, strings: strings, allKey: allKey) }
        case .account:
            return
        }
    }

    private mutating func applyDeal(_ d: DealFacts, sign: Int32, strings: StringTable, allKey: UInt32) {
        let qualifiedIndex = model.pipelines[Int(d.pipelineIndex)].qualifiedIndex
        let durationNs = d.status == .won ? d.closedAt!.nanoseconds - d.createdAt.nanoseconds : 0
        let durationDays = Double(durationNs) / 86_400e9
        let createdMonth = d.createdAt.monthIndex
        let closedMonth = d.closedAt?.monthIndex ?? 0
        for dimension in Dimension.allCases where dimensionMask & (1 << dimension.rawValue) != 0 {
            let key: UInt32
            switch dimension {
            case .all: key = allKey
            case .pipeline: key = d.pipeline
            case .team: key = d.team
            case .owner: key = d.owner
            case .leadSource: key = d.leadSource
            case .source: key = d.source
            }
            guard owns(dimension, key, strings: strings) else { continue }
            if readsCreatedCohort {
                for p in 0..<3 {
                    let i = cell(CellKey(dimension: dimension, key: key, period: Period.nth(p, month: createdMonth)))
                    cells[i].created += sign
                    if Int(d.furthest) >= qualifiedIndex { cells[i].qualified += sign }
                    if readsCreatedAmount { cells[i].createdAmount.add(d.amount, times: Int(sign)) }
                    if needsAmountSketch { cells[i].amountSketch.add(d.amount, times: sign) }
                    if needsStages {
                        let base = stageOffsets[Int(d.pipelineIndex)]
                        for s in 0...Int(d.furthest) { cells[i].reached[base + s] += sign }
                    }
                    markDirty(i)
                }
            }
            if readsClosedCohort && d.isClosed {
                for p in 0..<3 {
                    let i = cell(CellKey(dimension: dimension, key: key, period: Period.nth(p, month: closedMonth)))
                    if d.status == .won {
                        cells[i].won += sign
                        cells[i].wonAmount.add(d.amount, times: Int(sign))
                        cells[i].wonDurationNanoseconds += sign > 0 ? durationNs : -durationNs
                        if needsDurationSketch { cells[i].durationSketch.add(durationDays, times: sign) }
                    } else {
                        cells[i].lost += sign
                    }
                    markDirty(i)
                }
            }
        }
    }

    private mutating func applySpend(_ s: SpendFacts, sign: Int32, strings: StringTable, allKey: UInt32) {
        for (dimension, key) in [(Dimension.all, allKey), (.leadSource, s.leadSource)]
        where owns(dimension, key, strings: strings) {
            for p in 0..<3 {
                let i = cell(CellKey(dimension: dimension, key: key, period: Period.nth(p, month: s.date.monthIndex)))
                cells[i].spendRecords += sign
                cells[i].spend.add(s.amount, times: Int(sign))
                markDirty(i)
            }
        }
    }

    /// The series changed since the last flush (new values and removals).
    public mutating func flush() -> [SeriesUpdate] {
        var out: [SeriesUpdate] = []
        if family == .customerRetentionRate {
            if var r = retention, r.isDirty {
                for (id, fields) in r.render() { record(id, fields, into: &out) }
                for id in published.keys where id.metric == .customerRetentionRate && !r.lastRendered.contains(id) {
                    out.append(SeriesUpdate(id: id, fields: nil))
                }
                for u in out where u.fields == nil { published[u.id] = nil }
                retention = r
            }
            return out
        }
        dirty.sort()
        for i in dirty {
            dirtyFlags[i] = false
            let key = cellKeys[i]
            for (id, fields) in render(cells[i], key) { record(id, fields, into: &out) }
        }
        dirty.removeAll(keepingCapacity: true)
        return out
    }

    @inline(__always)
    private mutating func markDirty(_ i: Int) {
        if !dirtyFlags[i] {
            dirtyFlags[i] = true
            dirty.append(i)
        }
    }

    private mutating func record(_ id: SeriesID, _ fields: [(String, FieldValue)]?, into out: inout [SeriesUpdate]) {
        let previous = published[id]
        if let fields {
            if let previous, previous.elementsEqual(fields, by: { $0.0 == $1.0 && $0.1 == $1.1 }) { return }
            published[id] = fields
            out.append(SeriesUpdate(id: id, fields: fields))
        } else if previous != nil {
            published[id] = nil
            out.append(SeriesUpdate(id: id, fields: nil))
        }
    }

    private func ratio(_ num: Int32, _ den: Int32) -> FieldValue {
        .number(den == 0 ? nil : Double(num) / Double(den))
    }

    /// Every series of one cell for this family; `nil` fields mean "does not exist".
    private func render(_ c: CellAggregates, _ key: CellKey) -> [(SeriesID, [(String, FieldValue)]?)] {
        func id(_ m: MetricName, pipeline: UInt16 = 0, from: UInt16 = 0) -> SeriesID {
            SeriesID(
                metric: m,
                dimension: key.dimension,
                key: key.key,
                period: key.period,
                pipeline: pipeline,
                fromStage: from
            )
        }
        let hasCreated = c.created > 0
        let closed = c.won + c.lost
        let hasClosed = closed > 0
        let w = Int(c.won)
        let revenue = c.wonAmount.value
        let aov: Double? = w == 0 ? nil : revenue / Double(w)
        let cycle: Double? = w == 0 ? nil : Double(c.wonDurationNanoseconds) / 86_400e9 / Double(w)
        let winRate: Double? = closed == 0 ? nil : Double(c.won) / Double(closed)
        switch family {
        case .newOpportunities:
            return [(id(.newOpportunities), hasCreated ? [("value", .count(Int(c.created)))] : nil)]
        case .qualifiedLeads:
            return [
                (id(.qualifiedLeads), hasCreated ? [("value", .count(Int(c.qualified)))] : nil),
                (
                    id(.qualificationRate),
                    hasCreated
                        ? [
                            ("value", ratio(c.qualified, c.created)), ("numerator", .count(Int(c.qualified))),
                            ("denominator", .count(Int(c.created))),
                        ] : nil
                ),
            ]
        case .winRate:
            return [
                (
                    id(.winRate),
                    hasClosed
                        ? [("value", .number(winRate)), ("numerator", .count(w)), ("denominator", .count(Int(closed)))]
                        : nil
                )
            ]
        case .stageConversion:
            var out: [(SeriesID, [(String, FieldValue)]?)] = []
            for (p, pipeline) in model.pipelines.enumerated() where pipeline.stages.count > 1 {
                let base = stageOffsets[p]
                let exists = c.reached[base] > 0
                for s in 0..<(pipeline.stages.count - 1) {
                    let den = c.reached[base + s]
                    let num = c.reached[base + s + 1]
                    out.append(
                        (
                            id(.stageConversion, pipeline: UInt16(p), from: UInt16(s)),
                            exists
                                ? [
                                    ("value", ratio(num, den)), ("numerator", .count(Int(num))),
                                    ("denominator", .count(Int(den))),
                                ]
                                : nil
                        )
                    )
                }
            }
            return out
        case .revenue:
            let n = Int(c.created)
            let total = c.createdAmount.value
            return [
                (id(.revenue), hasClosed ? [("value", .number(revenue)), ("count", .count(w))] : nil),
                (
                    id(.dealSize),
                    hasCreated
                        ? [
                            ("value", .number(total / Double(n))), ("count", .count(n)), ("sum", .number(total)),
                            ("p50", .number(c.amountSketch.percentile(50))),
                            ("p90", .number(c.amountSketch.percentile(90))),
                        ]
                        : nil
                ),
            ]
        case .averageOrderValue:
            return [
                (
                    id(.averageOrderValue),
                    hasClosed
                        ? [("value", .number(aov)), ("count", .count(w)), ("sum", .number(revenue))] : nil
                )
            ]
        case .salesCycleLength:
            return [
                (
                    id(.salesCycleLength),
                    hasClosed
                        ? [
                            ("value", .number(cycle)), ("count", .count(w)),
                            ("p50", .number(c.durationSketch.percentile(50))),
                            ("p90", .number(c.durationSketch.percentile(90))),
                        ] : nil
                )
            ]
        case .salesVelocity:
            let opportunities = Int(c.created)
            var velocity: Double?
            if let winRate, let aov, let cycle, cycle != 0 {
                velocity = Double(opportunities) * winRate * aov / cycle
            }
            return [
                (
                    id(.salesVelocity),
                    hasCreated || hasClosed
                        ? [
                            ("value", .number(velocity)), ("opportunities", .count(opportunities)),
                            ("win_rate", .number(winRate)),
                            ("average_order_value", .number(aov)), ("sales_cycle_length", .number(cycle)),
                        ] : nil
                )
            ]
        case .roi:
            let spend = c.spend.value
            let value: Double? = spend == 0 ? nil : c.wonAmount.difference(c.spend) / spend
            return [
                (
                    id(.roi),
                    hasClosed || c.spendRecords > 0
                        ? [("value", .number(value)), ("revenue", .number(revenue)), ("spend", .number(spend))] : nil
                )
            ]
        case .customerRetentionRate:
            return []
        }
    }
}
