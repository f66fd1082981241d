public import DealModel
public import PipelineMetrics
public import Wire

/// The state of one metric family in one worker session: the string table the daemon
/// streams, and one engine per *lane* (a set of partitions the daemon assigned at once).
///
/// A value owned by the worker's socket thread (`WorkerLoop`), which is its only user: it
/// applies whole fact batches and writes what changed as one `RESULT` body of compact
/// values (`WorkerLink.ResultWriter`; the daemon renders the JSON), with no hop to another
/// thread or actor on the hot path. It keeps the session's numbering of what it reports:
/// series numbers, dense from 0 in the order first reported, and the shapes sent. A lane being rebuilt gets its rebuild chunks first; the live
/// batches that arrive meanwhile wait in the lane and are applied, in order, after its
/// last chunk: the aggregates (sketches, retention) are order-sensitive, so a lane sees
/// exactly the facts at its rebuild position followed by every change after it.
public struct MetricShard {
    public let family: MetricFamily
    public let model: Model
    private var strings = StringTable()
    private var lanes: [UInt32: Lane] = [:]
    /// Lanes whose rebuild finished since the last flush: their first flush is whole.
    private var completed: [UInt32] = []
    /// The next series number of this session.
    private var nextSeries: UInt32 = 0
    /// Whether each metric's shape (shape id = `MetricName.rawValue`) was sent in this session.
    private var shapesSent = [Bool](repeating: false, count: MetricName.allCases.count)

    struct Lane {
        var engine: MetricEngine
        /// Live batches received while the rebuild is still coming, in order.
        var waiting: [[FactChange]]? = []
        var rebuiltFacts: UInt64 = 0
    }

    public init(family: MetricFamily, model: Model) {
        self.family = family
        self.model = model
    }

    /// Opens a lane for `assign.partitions`; its rebuild chunks follow.
    public mutating func assign(_ assign: WorkerLink.Assign) throws(BinaryDecodingError) {
        guard lanes[assign.lane] == nil else { throw BinaryDecodingError("lane \(assign.lane) assigned twice") }
        let set = PartitionSet(count: assign.partitionCount, members: assign.partitions)
        lanes[assign.lane] = Lane(engine: MetricEngine(family: family, model: model, assignment: set))
    }

    /// Stops computing `partitions` (moved to another worker); a lane left with none is closed.
    public mutating func release(_ partitions: [Int]) {
        for id in Array(lanes.keys) {
            var kept = lanes[id]!.engine.assignment
            for p in partitions { kept.remove(p) }
            guard kept != lanes[id]!.engine.assignment else { continue }
            if kept.isEmpty {
                lanes[id] = nil
                completed.removeAll { $0 == id }
                continue
            }
            lanes[id]!.engine.restrict(to: kept, strings: strings, allKey: MetricShard.allKey)
        }
    }

    /// The daemon interns `"*"` first.
    static let allKey: UInt32 = 0

    /// The lanes and their partitions (for logs).
    public var laneCount: Int { lanes.count }

    public var laneSummary: String {
        lanes.keys.sorted().map { "\($0):\(lanes[$0]!.engine.assignment)" }.joined(separator: " ")
    }

    /// Applies a batch: a live one to every lane (waiting in lanes still being rebuilt), a
    /// rebuild chunk to its lane. Returns the facts the lane has applied for a chunk.
    @discardableResult
    public mutating func apply(_ batch: WorkerLink.FactBatch) throws(BinaryDecodingError) -> UInt64 {
        guard Int(batch.firstStringID) == strings.count else {
            throw BinaryDecodingError(
                "string table out of step: have \(strings.count), batch starts at \(batch.firstStringID)"
            )
        }
        for s in batch.strings { strings.append(s) }
        if batch.lane == WorkerLink.everyLane {
            // The ids are copied out first: iterating `lanes.keys` would keep a second
            // reference to the dictionary's storage, so the first change of the batch would
            // copy it, and with it every array of every engine (each cell's aggregates).
            for id in Array(lanes.keys) {
                if lanes[id]!.waiting != nil {
                    lanes[id]!.waiting!.append(batch.changes)
                } else {
                    for change in batch.changes {
                        lanes[id]!.engine.apply(change, strings: strings, allKey: MetricShard.allKey)
                    }
                }
            }
            return 0
        }
        guard var lane = lanes.removeValue(forKey: batch.lane) else {
            // A lane released while its rebuild was on the way: nothing to do.
            return 0
        }
        guard let waiting = lane.waiting else {
            lanes[batch.lane] = lane
            throw BinaryDecodingError("rebuild chunk for lane \(batch.lane), which is already rebuilt")
        }
        for change in batch.changes { lane.engine.apply(change, strings: strings, allKey: MetricShard.allKey) }
        lane.rebuiltFacts += UInt64(batch.changes.count)
        if batch.isLastChunk {
            for changes in waiting {
                for change in changes { lane.engine.apply(change, strings: strings, allKey: MetricShard.allKey) }
            }
            lane.waiting = nil
            completed.append(batch.lane)
        }
        lanes[batch.lane] = lane
        return lane.rebuiltFacts
    }

    /// The `RESULT` body of the series changed since the last flush in every rebuilt lane,
    /// and the lanes whose whole state this flush holds for the first time.
    public mutating func flush() -> (body: [UInt8], completeLanes: [UInt32]) {
        var sink = BodySink(
            writer: WorkerLink.ResultWriter(),
            nextSeries: nextSeries,
            shapesSent: shapesSent,
            strings: strings,
            model: model
        )
        shapesSent = []
        for id in lanes.keys.sorted() where lanes[id]!.waiting == nil {
            lanes[id]!.engine.flush(into: &sink)
        }
        nextSeries = sink.nextSeries
        shapesSent = sink.shapesSent
        let complete = completed
        completed = []
        return (sink.writer.bytes, complete)
    }

    /// Writes what the engines report: a series' shape (once per session) and topic (once
    /// per series) before its first values.
    struct BodySink: SeriesSink {
        var writer: WorkerLink.ResultWriter
        var nextSeries: UInt32
        var shapesSent: [Bool]
        let strings: StringTable
        let model: Model

        mutating func introduce(_ id: SeriesID) -> UInt32 {
            let shape = Int(id.metric.rawValue)
            if !shapesSent[shape] {
                writer.shape(UInt16(shape), id.metric.shape)
                shapesSent[shape] = true
            }
            let number = nextSeries
            nextSeries += 1
            writer.series(number, shape: UInt16(shape), topic: Topics.topic(id, strings: strings, model: model))
            return number
        }

        mutating func values(_ number: UInt32, _ words: ArraySlice<UInt64>) { writer.values(number, words) }

        mutating func removed(_ number: UInt32) { writer.removed(number) }
    }
}
