public import DealModel
public import PipelineMetrics
public import Wire

/// The state of one metric family on one shard: the engine and the string table the
/// daemon streams.
///
/// A value owned by the worker's socket thread (`WorkerLoop`), which is its only user: it
/// applies whole fact batches and renders what changed, with no hop to another thread or
/// actor on the hot path.
public struct MetricShard {
    public let family: MetricFamily
    public let model: Model
    private var engine: MetricEngine
    private var strings = StringTable()

    public init(family: MetricFamily, model: Model, assignment: ShardAssignment) {
        self.family = family
        self.model = model
        self.engine = MetricEngine(family: family, model: model, assignment: assignment)
    }

    /// A rendered series: topic, and payload (empty when the series was removed).
    public struct Rendered: Sendable {
        public var topic: [UInt8]
        public var payload: [UInt8]
    }

    /// Applies a batch of fact changes.
    public mutating func apply(_ batch: WorkerLink.FactBatch) throws(BinaryDecodingError) {
        guard Int(batch.firstStringID) == strings.count else {
            throw BinaryDecodingError(
                "string table out of step: have \(strings.count), batch starts at \(batch.firstStringID)"
            )
        }
        for s in batch.strings { strings.append(s) }
        let allKey: UInt32 = 0  // the daemon interns "*" first
        for change in batch.changes { engine.apply(change, strings: strings, allKey: allKey) }
    }

    /// The series changed since the last flush, rendered.
    public mutating func flush() -> [Rendered] {
        let strings = self.strings
        let model = self.model
        return engine.flush().map { update in
            let topic = Topics.topic(update.id, strings: strings, model: model)
            guard let fields = update.fields else { return Rendered(topic: topic, payload: []) }
            return Rendered(
                topic: topic,
                payload: Topics.payload(update.id, fields: fields, strings: strings, model: model)
            )
        }
    }
}
