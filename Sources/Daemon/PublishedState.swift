import DealModel
import PipelineMetrics
import Wire

/// The published state: the latest values of every live series with the `seq` and
/// `log_seq` they were published at, and the position of the last publication round.
///
/// Values are kept as words (`FieldWord`) with their shape, never as JSON: a round's
/// changes are stored here and copied out as a `RoundOutput`, which the `UpdatesPublisher`
/// renders once into the messages it sends (labels, then the fields, then `seq` and
/// `log_seq`), and a snapshot renders from the stored values the same bytes the update
/// carried. Owned by the loop thread, which also answers snapshots, so a snapshot is
/// always one whole round: never half of one.
struct PublishedState {
    /// One series by catalog id: its shape (-1: not live), where its words are in `words`
    /// (`capacity` of them reserved there), and the `seq`/`log_seq` it was published at.
    struct Entry {
        var shape: Int32 = -1
        var offset: UInt32 = 0
        var capacity: UInt8 = 0
        var seq: UInt64 = 0
        var logSeq: UInt64 = 0
        var isLive: Bool { shape >= 0 }
    }

    let catalog: SeriesCatalog
    private(set) var entries: [Entry] = []
    private var words: [UInt64] = []
    /// The number of live series.
    private(set) var count = 0
    private(set) var seq: UInt64 = 0
    private(set) var logSeq: UInt64 = 0

    init(catalog: SeriesCatalog) { self.catalog = catalog }

    /// Applies one round's coalesced changes at position `logSeq` and returns what
    /// subscribers are to receive of it (rendered and sent by the `UpdatesPublisher`,
    /// `_progress` last). A removal of a live series is published once more with
    /// `"removed":true`; a value equal to the one subscribers have is not sent again (a
    /// partition's new owner reports its whole state at a switch).
    ///
    /// Only stores and copies: each update's topic and labels (from the catalog) and its
    /// values go into the output, so rendering needs nothing of this state.
    mutating func apply(_ changes: WorkerRegistry.Result, logSeq: UInt64) -> RoundOutput {
        self.logSeq = logSeq
        grow()
        var output = RoundOutput(logSeq: logSeq, seq: seq, fields: catalog.fields)
        output.updates.reserveCapacity(changes.series.count)
        output.words.reserveCapacity(changes.words.count)
        output.text.reserveCapacity(changes.series.count * 192)
        let catalog = self.catalog
        changes.words.withUnsafeBufferPointer { all in
            catalog.withText { text, spans in
                for change in changes.series {
                    let start = Int(change.offset)
                    let new = UnsafeBufferPointer(rebasing: all[start..<(start + Int(change.fields))])
                    guard store(change, new, logSeq: logSeq) else { continue }
                    let span = spans[Int(change.id)]
                    output.updates.append(
                        RoundOutput.Update(
                            start: UInt32(output.text.count),
                            topicCount: span.topicCount,
                            labelCount: span.labelCount,
                            shape: change.shape,
                            offset: UInt32(output.words.count),
                            seq: seq
                        )
                    )
                    output.text.append(
                        contentsOf: UnsafeBufferPointer(rebasing: text[span.topic.lowerBound..<span.labels.upperBound])
                    )
                    if !change.isRemoval { output.words.append(contentsOf: new) }
                }
            }
        }
        output.seq = seq
        return output
    }

    /// What `_progress` carries between rounds: nothing changed, at the last position.
    var progressOnly: RoundOutput { RoundOutput(logSeq: logSeq, seq: seq) }

    /// Makes room for every series the catalog has.
    private mutating func grow() {
        if entries.count < catalog.count {
            entries.append(contentsOf: repeatElement(Entry(), count: catalog.count - entries.count))
        }
    }

    /// Stores one change at `logSeq` with the next `seq`; false when subscribers need not
    /// hear of it (a removal of a series not live, a value equal to the published one).
    private mutating func store(_ change: SeriesChange, _ new: UnsafeBufferPointer<UInt64>, logSeq: UInt64) -> Bool {
        let id = Int(change.id)
        let entry = entries[id]
        if change.isRemoval {
            guard entry.isLive else { return false }
            entries[id].shape = -1
            count -= 1
            seq += 1
            return true
        }
        let n = new.count
        if entry.isLive && entry.shape == change.shape {
            let same = words.withUnsafeBufferPointer { held in
                UnsafeBufferPointer(rebasing: held[Int(entry.offset)..<(Int(entry.offset) + n)]).elementsEqual(new)
            }
            if same { return false }
        }
        if !entry.isLive { count += 1 }
        if Int(entry.capacity) < n {
            entries[id].offset = UInt32(words.count)
            entries[id].capacity = UInt8(n)
            words.append(contentsOf: new)
        } else {
            words.withUnsafeMutableBufferPointer { held in
                for i in 0..<n { held[Int(entry.offset) + i] = new[i] }
            }
        }
        seq += 1
        entries[id].shape = change.shape
        entries[id].seq = seq
        entries[id].logSeq = logSeq
        return true
    }

    /// Writes the payload of live series `id` as published into `out` (emptied first).
    private func render(_ id: Int, into out: inout [UInt8]) {
        let entry = entries[id]
        let fields = catalog.fields[Int(entry.shape)]
        out.removeAll(keepingCapacity: true)
        out.append(contentsOf: catalog.labels(id))
        words.withUnsafeBufferPointer { all in
            let start = Int(entry.offset)
            Topics.appendValues(
                fields,
                UnsafeBufferPointer(rebasing: all[start..<(start + fields.count)]),
                seq: entry.seq,
                logSeq: entry.logSeq,
                to: &out
            )
        }
    }

    /// The live series of some partitions of a family, with their partitions (a scan:
    /// needed only when partitions move).
    func topics(of family: MetricFamily, partitions: PartitionSet) -> [UInt32: Int] {
        var out: [UInt32: Int] = [:]
        for (id, entry) in entries.enumerated() where entry.isLive {
            let owner = catalog.owners[id]
            if owner.family == family && partitions.contains(owner.partition) { out[UInt32(id)] = owner.partition }
        }
        return out
    }

    /// The snapshot of every live series whose topic starts with `prefix`, rendered, in
    /// topic order.
    func snapshot(prefix: [UInt8]) -> [(topic: [UInt8], payload: [UInt8])] {
        var out: [(topic: [UInt8], payload: [UInt8])] = []
        for (id, entry) in entries.enumerated() where entry.isLive {
            let topic = catalog.topic(id)
            guard topic.starts(with: prefix) else { continue }
            var payload: [UInt8] = []
            render(id, into: &payload)
            out.append((topic, payload))
        }
        return out.sorted { $0.topic.lexicographicallyPrecedes($1.topic) }
    }
}

extension PublishedState {
    /// 2: values and shapes (1 kept JSON payloads; it is not read, workers rebuild instead).
    static let fileFormat: UInt32 = 2

    /// The published state as bytes, saved with every checkpoint and at a graceful stop:
    /// a restart serves it (an earlier consistent state) at once, while the workers are
    /// still being rebuilt, instead of an empty snapshot. The shapes used, then per live
    /// series its topic, labels, family, partition, shape, `seq`, `log_seq` and words (the
    /// labels so that a restore reads no topic again).
    func encoded(layout: Layout) -> [UInt8] {
        var w = BinaryWriter(capacity: 64 + count * 120)
        w.u32(PublishedState.fileFormat)
        w.string(layout.description)
        w.u64(seq)
        w.u64(logSeq)
        w.u32(UInt32(catalog.shapes.count))
        for shape in catalog.shapes {
            w.u8(UInt8(shape.fields.count))
            for field in shape.fields {
                w.u8(field.kind.rawValue)
                w.string(field.name)
            }
        }
        w.u64(UInt64(count))
        for (id, entry) in entries.enumerated() where entry.isLive {
            let owner = catalog.owners[id]
            w.bytes(catalog.topic(id))
            w.bytes(catalog.labels(id))
            w.string(owner.family.rawValue)
            w.u32(UInt32(owner.partition))
            w.u32(UInt32(entry.shape))
            w.u64(entry.seq)
            w.u64(entry.logSeq)
            let n = catalog.shapes[Int(entry.shape)].fields.count
            for word in words[Int(entry.offset)..<(Int(entry.offset) + n)] { w.u64(word) }
        }
        return w.bytes
    }

    /// What a saved state belongs to: the families served and the partition count (which
    /// partition a series is in depends on it). How many workers serve them does not matter.
    struct Layout: CustomStringConvertible {
        var families: [MetricFamily]
        var partitions: Int
        var description: String {
            families.map(\.rawValue).sorted().joined(separator: ",") + ";partitions=\(partitions)"
        }
    }

    /// Reads `encoded(layout:)` bytes into `catalog`; fails unless they were saved by a
    /// daemon with the same layout (families and partition count): with another one,
    /// series would belong to other partitions and their removals could be lost.
    init(encoded bytes: [UInt8], layout: Layout, catalog: SeriesCatalog) throws(BinaryDecodingError) {
        self.init(catalog: catalog)
        var r = BinaryReader(bytes)
        guard try r.u32("format") == PublishedState.fileFormat else {
            throw BinaryDecodingError("unknown published-state format")
        }
        guard try r.string("layout") == layout.description else {
            throw BinaryDecodingError("saved with another layout (families or partition count)")
        }
        seq = try r.u64("seq")
        logSeq = try r.u64("log_seq")
        var shapes: [(id: Int32, fields: Int)] = []
        for _ in 0..<(try r.u32("shapes")) {
            let n = Int(try r.u8("field count"))
            var fields: [SeriesShape.Field] = []
            for _ in 0..<n {
                guard let kind = FieldKind(rawValue: try r.u8("field kind")) else {
                    throw BinaryDecodingError("unknown field kind")
                }
                fields.append(.init(try r.string("field name"), kind))
            }
            shapes.append((catalog.shape(SeriesShape(fields)), n))
        }
        let live = try r.u64("count")
        var changes = WorkerRegistry.Result(logSeq: logSeq, series: [])
        var stamps: [(seq: UInt64, logSeq: UInt64)] = []
        for _ in 0..<live {
            let topic = try r.bytes("topic")
            let labels = try r.bytes("labels")
            guard let family = MetricFamily(rawValue: try r.string("family")) else {
                throw BinaryDecodingError("unknown family")
            }
            let partition = Int(try r.u32("partition"))
            guard layout.families.contains(family), partition < layout.partitions,
                let id = catalog.restore(
                    topic: topic,
                    labels: labels,
                    owner: SeriesOwner(family: family, partition: partition)
                )
            else {
                throw BinaryDecodingError("series of \(family.rawValue)#\(partition), which this daemon does not serve")
            }
            let shape = Int(try r.u32("shape"))
            guard shape < shapes.count else { throw BinaryDecodingError("shape \(shape) of \(shapes.count)") }
            stamps.append((try r.u64("seq"), try r.u64("log_seq")))
            let offset = changes.words.count
            for _ in 0..<shapes[shape].fields { changes.words.append(try r.u64("value")) }
            changes.series.append(
                SeriesChange(
                    id: id,
                    partition: partition,
                    shape: shapes[shape].id,
                    fields: shapes[shape].fields,
                    offset: offset
                )
            )
        }
        guard r.isAtEnd else { throw BinaryDecodingError("trailing bytes after the published state") }
        let (savedSeq, savedLogSeq) = (seq, logSeq)
        grow()
        changes.words.withUnsafeBufferPointer { all in
            for (change, stamp) in zip(changes.series, stamps) {
                let start = Int(change.offset)
                _ = store(change, UnsafeBufferPointer(rebasing: all[start..<(start + Int(change.fields))]), logSeq: 0)
                entries[Int(change.id)].seq = stamp.seq
                entries[Int(change.id)].logSeq = stamp.logSeq
            }
        }
        seq = savedSeq
        logSeq = savedLogSeq
    }
}
