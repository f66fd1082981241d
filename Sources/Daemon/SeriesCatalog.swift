import DealModel
import PipelineMetrics
import Wire

/// Every series topic the daemon has accepted, each given a dense id once, and every field
/// list (shape) workers have sent.
///
/// Exists so that a topic is parsed, checked against a family (`partition(ofTopic:)`) and
/// hashed once, when a worker session first reports it, and never again: results,
/// rounds and the published state refer to series by id, and the labels of a series'
/// payload are rendered from its topic once, here. A topic belongs to exactly one family,
/// so a session of another family naming it is refused. Ids are never reused; the catalog
/// grows with the series ever seen (as the topic checks it replaces did).
///
/// Owned by the loop thread, shared by the `WorkerLinkServer` (which adds series) and the
/// `PublishedState` (which renders them).
final class SeriesCatalog {
    let partitionCount: Int
    private var index: [TopicKey: UInt32] = [:]
    /// Every series' topic and then its payload's labels (`Topics.labels(ofTopic:)`), back
    /// to back, by id at `spans[id]`: one buffer, so a round appends and sends them with no
    /// reference counting per series (`withText`).
    private(set) var text: [UInt8] = []
    private(set) var spans: [TextSpan] = []
    /// By id: the family and partition that own the series.
    private(set) var owners: [SeriesOwner] = []

    /// Where a series' topic and labels are in `text`: the labels follow the topic.
    struct TextSpan {
        var start: UInt32
        var topicCount: UInt32
        var labelCount: UInt32
        var topic: Range<Int> { Int(start)..<(Int(start) + Int(topicCount)) }
        var labels: Range<Int> { topic.upperBound..<(topic.upperBound + Int(labelCount)) }
    }

    /// By shape id (the catalog's, not a session's): the field list and its rendering.
    private(set) var shapes: [SeriesShape] = []
    private(set) var fields: [Topics.PayloadFields] = []
    private var shapeIndex: [SeriesShape: Int32] = [:]

    init(partitionCount: Int) { self.partitionCount = partitionCount }

    var count: Int { spans.count }

    /// The topic of series `id` (a copy: for the paths that are not per update).
    func topic(_ id: Int) -> [UInt8] { Array(text[spans[id].topic]) }

    /// The payload labels of series `id` (a copy, as `topic`).
    func labels(_ id: Int) -> [UInt8] { Array(text[spans[id].labels]) }

    /// Calls `body` with the text buffer and the spans, for copying out many series.
    func withText<R, E: Error>(
        _ body: (UnsafeBufferPointer<UInt8>, UnsafeBufferPointer<TextSpan>) throws(E) -> R
    ) throws(E) -> R {
        let text = self.text
        let spans = self.spans
        return try text.withUnsafeBufferPointer { t throws(E) in
            try spans.withUnsafeBufferPointer { s throws(E) in try body(t, s) }
        }
    }

    private func append(topic: [UInt8], labels: [UInt8], owner: SeriesOwner) {
        spans.append(
            TextSpan(start: UInt32(text.count), topicCount: UInt32(topic.count), labelCount: UInt32(labels.count))
        )
        text.append(contentsOf: topic)
        text.append(contentsOf: labels)
        owners.append(owner)
    }

    /// The id of `topic` if it is a series `family` publishes (added the first time), nil
    /// if it is not one, or is another family's.
    func series(topic: [UInt8], family: MetricFamily) -> UInt32? {
        let key = TopicKey(topic)
        if let id = index[key] { return owners[Int(id)].family == family ? id : nil }
        guard let parsed = Topics.SeriesTopic(topic),
            let partition = SeriesCatalog.partition(of: parsed, family: family, count: partitionCount)
        else { return nil }
        let id = UInt32(spans.count)
        index[key] = id
        append(topic: topic, labels: parsed.labels, owner: SeriesOwner(family: family, partition: partition))
        return id
    }

    /// The id of `topic`, taken as the published state saved it (this daemon's own file,
    /// its labels and owner as they were checked when the series was first reported).
    func restore(topic: [UInt8], labels: [UInt8], owner: SeriesOwner) -> UInt32? {
        let key = TopicKey(topic)
        if let id = index[key] { return owners[Int(id)] == owner ? id : nil }
        let id = UInt32(spans.count)
        index[key] = id
        append(topic: topic, labels: labels, owner: owner)
        return id
    }

    /// The id of a shape (added the first time).
    func shape(_ shape: SeriesShape) -> Int32 {
        if let id = shapeIndex[shape] { return id }
        let id = Int32(shapes.count)
        shapeIndex[shape] = id
        shapes.append(shape)
        fields.append(Topics.PayloadFields(shape))
        return id
    }

    /// The partition of `family` that `topic` would be in if it is a series the family
    /// publishes (its metric, dimension and a key), or nil.
    static func partition(ofTopic topic: [UInt8], family: MetricFamily, count: Int) -> Int? {
        Topics.SeriesTopic(topic).flatMap { partition(of: $0, family: family, count: count) }
    }

    private static func partition(of topic: Topics.SeriesTopic, family: MetricFamily, count: Int) -> Int? {
        guard family.publishes(metricSegment: topic.metricSegment), family.dimensions.contains(topic.dimension) else {
            return nil
        }
        return Partitioning.partition(of: topic.dimension, keyBytes: topic.key, count: count)
    }
}

/// A series in a worker's result or a round: its catalog id and partition, and either its
/// values (`fields` words at `offset` in the result's or round's `words`, rendered with
/// catalog shape `shape`) or a removal (`shape` < 0). Sixteen bytes, no allocation of its own.
struct SeriesChange: Equatable {
    var id: UInt32
    var offset: UInt32
    var shape: Int32
    var partition: UInt16
    var fields: UInt8

    init(id: UInt32, partition: Int, shape: Int32, fields: Int, offset: Int) {
        self.id = id
        self.partition = UInt16(partition)
        self.shape = shape
        self.fields = UInt8(fields)
        self.offset = UInt32(offset)
    }

    var isRemoval: Bool { shape < 0 }

    static func removal(_ id: UInt32, partition: Int) -> SeriesChange {
        SeriesChange(id: id, partition: partition, shape: -1, fields: 0, offset: 0)
    }
}

/// What one worker session has defined in its results (`WorkerLink.ResultSchema`), and
/// what each of its series numbers and shape ids are in the catalog (-1: refused topic).
struct SessionSeries {
    var schema = WorkerLink.ResultSchema()
    var ids: [Int32] = []
    var shapes: [Int32] = []
    /// The topics of refused series numbers, for the log (a few).
    var refusedTopics: [UInt32: [UInt8]] = [:]
}

extension SessionSeries {
    /// Reads one `RESULT` body of the session against what it defined before: takes the
    /// shapes and series it defines (each new series checked against `family` in the
    /// catalog, once), and returns its entries that are of accepted series in `held`
    /// partitions as a result at `logSeq`, with how many were not and an example topic.
    /// A body that cannot be read throws, and nothing of it is taken.
    mutating func read(
        _ body: [UInt8],
        logSeq: UInt64,
        family: MetricFamily,
        held: PartitionSet,
        catalog: SeriesCatalog
    ) throws(BinaryDecodingError) -> (result: WorkerRegistry.Result, rejected: Int, example: [UInt8]) {
        let decoded = try schema.decode(body)
        schema.adopt(decoded)
        for (shapeID, shape) in decoded.shapes {
            let i = Int(shapeID)
            if i >= shapes.count { shapes.append(contentsOf: repeatElement(-1, count: i - shapes.count + 1)) }
            shapes[i] = catalog.shape(shape)
        }
        for s in decoded.series {
            if let series = catalog.series(topic: s.topic, family: family) {
                ids.append(Int32(series))
            } else {
                ids.append(-1)
                if refusedTopics.count < 64 { refusedTopics[s.number] = s.topic }
            }
        }
        var series: [SeriesChange] = []
        series.reserveCapacity(decoded.entries.count)
        var rejected = 0
        var example: [UInt8] = []
        let owners = catalog.owners
        let fields = catalog.fields
        for entry in decoded.entries {
            let id = ids[Int(entry.number)]
            let partition = id < 0 ? -1 : owners[Int(id)].partition
            guard held.contains(partition) else {
                rejected += 1
                if example.isEmpty {
                    example =
                        id >= 0
                        ? catalog.topic(Int(id))
                        : refusedTopics[entry.number] ?? Array("series \(entry.number)".utf8)
                }
                continue
            }
            if entry.offset == WorkerLink.DecodedResult.removed {
                series.append(.removal(UInt32(id), partition: partition))
            } else {
                let shape = shapes[Int(schema.seriesShapes[Int(entry.number)])]
                series.append(
                    SeriesChange(
                        id: UInt32(id),
                        partition: partition,
                        shape: shape,
                        fields: fields[Int(shape)].count,
                        offset: Int(entry.offset)
                    )
                )
            }
        }
        return (WorkerRegistry.Result(logSeq: logSeq, series: series, words: decoded.words), rejected, example)
    }
}
