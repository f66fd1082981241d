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
/// that this shard owns; `flush` computes the series of the cells changed since the last
/// flush and reports to a `SeriesSink` only those whose values changed, plus removals.
/// Nothing is ever recomputed from scratch per event.
///
/// Every cell has the same series *slots* (the family's metrics, and for stage conversion
/// one per pipeline and stage pair), so what was last reported of a series is kept in flat
/// arrays by cell and slot: its session number, whether it exists, and its values as
/// `FieldWord`s. No series key is hashed and no field name is kept per series.
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
    private var retention: RetentionEngine?

    /// One series of every cell: its metric (and stage pair), where its words start among
    /// the cell's `valuesPerCell`, and how many there are.
    struct Slot {
        var metric: MetricName
        var pipeline: UInt16 = 0
        var fromStage: UInt16 = 0
        var offset: Int
        var count: Int
    }
    let slots: [Slot]
    let valuesPerCell: Int
    /// Per cell and slot (`cell * slots.count + slot`): the series' session number
    /// (`unnumbered` until first reported) and whether it was last reported as existing.
    private var seriesNumbers: [UInt32] = []
    private var reported: [Bool] = []
    /// Per cell, `valuesPerCell` words: the values last reported (meaningful where `reported`).
    private var reportedValues: [UInt64] = []
    /// customer_retention_rate: the series last reported, by period.
    private var retentionReported: [Period: (number: UInt32, words: [UInt64], exists: Bool)] = [:]
    static let unnumbered = UInt32.max

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
        var slots: [Slot] = []
        var width = 0
        func add(_ metric: MetricName, pipeline: UInt16 = 0, from: UInt16 = 0) {
            let n = metric.shape.fields.count
            slots.append(Slot(metric: metric, pipeline: pipeline, fromStage: from, offset: width, count: n))
            width += n
        }
        switch family {
        case .newOpportunities: add(.newOpportunities)
        case .qualifiedLeads:
            add(.qualifiedLeads)
            add(.qualificationRate)
        case .winRate: add(.winRate)
        case .stageConversion:
            for (p, pipeline) in model.pipelines.enumerated() where pipeline.stages.count > 1 {
                for s in 0..<(pipeline.stages.count - 1) { add(.stageConversion, pipeline: UInt16(p), from: UInt16(s)) }
            }
        case .revenue:
            add(.revenue)
            add(.dealSize)
        case .averageOrderValue: add(.averageOrderValue)
        case .salesCycleLength: add(.salesCycleLength)
        case .salesVelocity: add(.salesVelocity)
        case .roi: add(.roi)
        case .customerRetentionRate: break
        }
        self.slots = slots
        valuesPerCell = width
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
        seriesNumbers.append(contentsOf: repeatElement(MetricEngine.unnumbered, count: slots.count))
        reported.append(contentsOf: repeatElement(false, count: slots.count))
        reportedValues.append(contentsOf: repeatElement(0, count: valuesPerCell))
        var c = CellAggregates()
        if needsStages { c.reached = [Int32](repeating: 0, count: stageSlots) }
        cells.append(c)
        return i
    }

    /// Stops computing every partition not in `kept` (a move handed them to another
    /// worker): their cells and what was reported of them are dropped, with no removals
    /// (their new owner publishes them). Linear in the cells held; runs once per move.
    public mutating func restrict(to kept: PartitionSet, strings: StringTable, allKey: UInt32) {
        precondition(kept.count == assignment.count, "partition count is fixed")
        assignment = kept
        ownership = []
        if family.reads.accounts {
            if !owns(.all, allKey, strings: strings) {
                retention = nil
                retentionReported = [:]
            }
            return
        }
        var remap = [Int](repeating: -1, count: cells.count)
        var keptKeys: [CellKey] = []
        var keptCells: [CellAggregates] = []
        var keptNumbers: [UInt32] = []
        var keptReported: [Bool] = []
        var keptValues: [UInt64] = []
        var table = CellTable()
        let width = slots.count
        for i in cells.indices where owns(cellKeys[i].dimension, cellKeys[i].key, strings: strings) {
            remap[i] = keptCells.count
            table.insert(cellKeys[i].packed, keptCells.count)
            keptKeys.append(cellKeys[i])
            keptCells.append(cells[i])
            keptNumbers.append(contentsOf: seriesNumbers[(i * width)..<((i + 1) * width)])
            keptReported.append(contentsOf: reported[(i * width)..<((i + 1) * width)])
            keptValues.append(contentsOf: reportedValues[(i * valuesPerCell)..<((i + 1) * valuesPerCell)])
        }
        seriesNumbers = keptNumbers
        reported = keptReported
        reportedValues = keptValues
        let wasDirty = dirty
        cellIndex = table
        cellKeys = keptKeys
        cells = keptCells
        dirtyFlags = [Bool](repeating: false, count: cells.count)
        dirty = []
        for i in wasDirty where remap[i] >= 0 { markDirty(remap[i]) }
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
        let durationDays = Double(nearest: durationNs) / 86_400e9
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

    /// Reports to `sink` the series changed since the last flush: each series whose values
    /// differ from what was last reported (numbered by the sink the first time), and each
    /// removal of one that was reported as existing.
    public mutating func flush<Sink: SeriesSink>(into sink: inout Sink) {
        if family == .customerRetentionRate {
            flushRetention(into: &sink)
            return
        }
        var words = [UInt64](repeating: 0, count: valuesPerCell)
        var exists = [Bool](repeating: false, count: slots.count)
        dirty.sort()
        for i in dirty {
            dirtyFlags[i] = false
            fill(cells[i], &words, &exists)
            let key = cellKeys[i]
            for (j, slot) in slots.enumerated() {
                let e = i * slots.count + j
                guard exists[j] else {
                    if reported[e] {
                        reported[e] = false
                        sink.removed(seriesNumbers[e])
                    }
                    continue
                }
                let base = i * valuesPerCell + slot.offset
                let new = words[slot.offset..<(slot.offset + slot.count)]
                if reported[e] && reportedValues[base..<(base + slot.count)].elementsEqual(new) { continue }
                if seriesNumbers[e] == MetricEngine.unnumbered {
                    let id = SeriesID(
                        metric: slot.metric,
                        dimension: key.dimension,
                        key: key.key,
                        period: key.period,
                        pipeline: slot.pipeline,
                        fromStage: slot.fromStage
                    )
                    seriesNumbers[e] = sink.introduce(id)
                }
                reported[e] = true
                reportedValues.replaceSubrange(base..<(base + slot.count), with: new)
                sink.values(seriesNumbers[e], new)
            }
        }
        dirty.removeAll(keepingCapacity: true)
    }

    private mutating func flushRetention<Sink: SeriesSink>(into sink: inout Sink) {
        guard var r = retention, r.isDirty else { return }
        let rendered = r.render()
        retention = r
        var present = Set<Period>()
        for (period, words) in rendered {
            present.insert(period)
            if let last = retentionReported[period] {
                guard !last.exists || last.words != words else { continue }
                retentionReported[period] = (last.number, words, true)
                sink.values(last.number, words[...])
            } else {
                let number = sink.introduce(
                    SeriesID(metric: .customerRetentionRate, dimension: .all, key: r.allKey, period: period)
                )
                retentionReported[period] = (number, words, true)
                sink.values(number, words[...])
            }
        }
        for (period, last) in retentionReported where last.exists && !present.contains(period) {
            retentionReported[period]!.exists = false
            sink.removed(last.number)
        }
    }

    @inline(__always)
    private mutating func markDirty(_ i: Int) {
        if !dirtyFlags[i] {
            dirtyFlags[i] = true
            dirty.append(i)
        }
    }

    @inline(__always)
    private func ratio(_ num: Int32, _ den: Int32) -> UInt64 {
        FieldWord.number(den == 0 ? nil : Double(num) / Double(den))
    }

    /// The values of every slot of one cell (`words`, by `Slot.offset`) and whether each
    /// series exists (`exists`, by slot). The series and fields are METRICS.md §3's.
    private func fill(_ c: CellAggregates, _ words: inout [UInt64], _ exists: inout [Bool]) {
        let hasCreated = c.created > 0
        let closed = c.won + c.lost
        let hasClosed = closed > 0
        let w = Int(c.won)
        let revenue = c.wonAmount.value
        let aov: Double? = w == 0 ? nil : revenue / Double(w)
        let cycle: Double? = w == 0 ? nil : Double(nearest: c.wonDurationNanoseconds) / 86_400e9 / Double(w)
        let winRate: Double? = closed == 0 ? nil : Double(c.won) / Double(closed)
        switch family {
        case .newOpportunities:
            exists[0] = hasCreated
            words[0] = FieldWord.count(Int(c.created))
        case .qualifiedLeads:
            exists[0] = hasCreated
            exists[1] = hasCreated
            guard hasCreated else { return }
            words[0] = FieldWord.count(Int(c.qualified))
            words[1] = ratio(c.qualified, c.created)
            words[2] = FieldWord.count(Int(c.qualified))
            words[3] = FieldWord.count(Int(c.created))
        case .winRate:
            exists[0] = hasClosed
            guard hasClosed else { return }
            words[0] = FieldWord.number(winRate)
            words[1] = FieldWord.count(w)
            words[2] = FieldWord.count(Int(closed))
        case .stageConversion:
            for (j, slot) in slots.enumerated() {
                let base = stageOffsets[Int(slot.pipeline)]
                exists[j] = c.reached[base] > 0
                guard exists[j] else { continue }
                let den = c.reached[base + Int(slot.fromStage)]
                let num = c.reached[base + Int(slot.fromStage) + 1]
                words[slot.offset] = ratio(num, den)
                words[slot.offset + 1] = FieldWord.count(Int(num))
                words[slot.offset + 2] = FieldWord.count(Int(den))
            }
        case .revenue:
            exists[0] = hasClosed
            if hasClosed {
                words[0] = FieldWord.number(revenue)
                words[1] = FieldWord.count(w)
            }
            exists[1] = hasCreated
            if hasCreated {
                let n = Int(c.created)
                let total = c.createdAmount.value
                words[2] = FieldWord.number(total / Double(n))
                words[3] = FieldWord.count(n)
                words[4] = FieldWord.number(total)
                words[5] = FieldWord.number(c.amountSketch.percentile(50))
                words[6] = FieldWord.number(c.amountSketch.percentile(90))
            }
        case .averageOrderValue:
            exists[0] = hasClosed
            guard hasClosed else { return }
            words[0] = FieldWord.number(aov)
            words[1] = FieldWord.count(w)
            words[2] = FieldWord.number(revenue)
        case .salesCycleLength:
            exists[0] = hasClosed
            guard hasClosed else { return }
            words[0] = FieldWord.number(cycle)
            words[1] = FieldWord.count(w)
            words[2] = FieldWord.number(c.durationSketch.percentile(50))
            words[3] = FieldWord.number(c.durationSketch.percentile(90))
        case .salesVelocity:
            exists[0] = hasCreated || hasClosed
            guard exists[0] else { return }
            let opportunities = Int(c.created)
            var velocity: Double?
            if let winRate, let aov, let cycle, cycle != 0 {
                velocity = Double(opportunities) * winRate * aov / cycle
            }
            words[0] = FieldWord.number(velocity)
            words[1] = FieldWord.count(opportunities)
            words[2] = FieldWord.number(winRate)
            words[3] = FieldWord.number(aov)
            words[4] = FieldWord.number(cycle)
        case .roi:
            exists[0] = hasClosed || c.spendRecords > 0
            guard exists[0] else { return }
            let spend = c.spend.value
            words[0] = FieldWord.number(spend == 0 ? nil : c.wonAmount.difference(c.spend) / spend)
            words[1] = FieldWord.number(revenue)
            words[2] = FieldWord.number(spend)
        case .customerRetentionRate:
            return
        }
    }
}
