public import DealModel

/// The metric names a topic can carry (METRICS.md §3).
public enum MetricName: UInt8, Sendable, CaseIterable {
    case newOpportunities, qualifiedLeads, qualificationRate, winRate, stageConversion, revenue, dealSize
    case averageOrderValue, salesCycleLength, salesVelocity, roi, customerRetentionRate

    public var name: String {
        switch self {
        case .newOpportunities: "new_opportunities"
        case .qualifiedLeads: "qualified_leads"
        case .qualificationRate: "qualification_rate"
        case .winRate: "win_rate"
        case .stageConversion: "stage_conversion"
        case .revenue: "revenue"
        case .dealSize: "deal_size"
        case .averageOrderValue: "average_order_value"
        case .salesCycleLength: "sales_cycle_length"
        case .salesVelocity: "sales_velocity"
        case .roi: "roi"
        case .customerRetentionRate: "customer_retention_rate"
        }
    }
}

/// One series: `(metric, dimension, key, period)`, with the pipeline and stage pair for
/// `stage_conversion`. Strings are `StringTable` ids.
public struct SeriesID: Hashable, Sendable {
    public var metric: MetricName
    public var dimension: Dimension
    public var key: UInt32
    public var period: Period
    /// `stage_conversion` only: pipeline index in the model and the `from` stage index.
    public var pipeline: UInt16
    public var fromStage: UInt16

    public init(
        metric: MetricName,
        dimension: Dimension,
        key: UInt32,
        period: Period,
        pipeline: UInt16 = 0,
        fromStage: UInt16 = 0
    ) {
        self.metric = metric
        self.dimension = dimension
        self.key = key
        self.period = period
        self.pipeline = pipeline
        self.fromStage = fromStage
    }
}

/// A payload field's value: a count, or a double that may be null.
///
/// The readable form of a `FieldWord`: what `Topics.payload` renders, the reference the
/// tests compare the daemon's own rendering with.
public enum FieldValue: Sendable, Equatable {
    case count(Int)
    case number(Double?)
}

/// How a payload field is written: a number (a double, or null) or a count (an integer).
public enum FieldKind: UInt8, Sendable, Hashable {
    case number = 0
    case count = 1
}

/// The fields of a series' payload, in order, with their kinds.
///
/// Exists so that values can travel and be stored as bare 8-byte words (`FieldWord`): a
/// worker sends each shape once per session and then only words, and the daemon keeps
/// words and renders the JSON itself (docs/workers.md, `RESULT`). Every metric has one
/// shape (`MetricName.shape`, METRICS.md §3).
public struct SeriesShape: Hashable, Sendable {
    /// One field: its JSON name and how its word is written.
    public struct Field: Hashable, Sendable {
        public var name: String
        public var kind: FieldKind
        public init(_ name: String, _ kind: FieldKind) {
            self.name = name
            self.kind = kind
        }
    }

    public var fields: [Field]
    public init(_ fields: [Field]) { self.fields = fields }
}

extension MetricName {
    /// The payload fields of this metric's series, `value` first (METRICS.md §3).
    public var shape: SeriesShape { MetricName.shapes[Int(rawValue)] }

    private static let shapes: [SeriesShape] = MetricName.allCases.map { metric in
        let ratio: [SeriesShape.Field] = [
            .init("value", .number), .init("numerator", .count), .init("denominator", .count),
        ]
        switch metric {
        case .newOpportunities, .qualifiedLeads: return SeriesShape([.init("value", .count)])
        case .qualificationRate, .winRate, .stageConversion: return SeriesShape(ratio)
        case .revenue: return SeriesShape([.init("value", .number), .init("count", .count)])
        case .dealSize:
            return SeriesShape([
                .init("value", .number), .init("count", .count), .init("sum", .number), .init("p50", .number),
                .init("p90", .number),
            ])
        case .averageOrderValue:
            return SeriesShape([.init("value", .number), .init("count", .count), .init("sum", .number)])
        case .salesCycleLength:
            return SeriesShape([
                .init("value", .number), .init("count", .count), .init("p50", .number), .init("p90", .number),
            ])
        case .salesVelocity:
            return SeriesShape([
                .init("value", .number), .init("opportunities", .count), .init("win_rate", .number),
                .init("average_order_value", .number), .init("sales_cycle_length", .number),
            ])
        case .roi: return SeriesShape([.init("value", .number), .init("revenue", .number), .init("spend", .number)])
        case .customerRetentionRate:
            return SeriesShape([
                .init("value", .number), .init("start", .count), .init("end", .count), .init("new", .count),
            ])
        }
    }
}

/// A field value as one 8-byte word: a count as its `Int64` bits, a number as its `Double`
/// bits, null as one quiet NaN.
///
/// Numbers are canonical (every non-finite value is null, −0 is 0), so two words are equal
/// exactly when their JSON text is: equal words are what "unchanged" means for a series.
public enum FieldWord {
    /// The word of a null number.
    public static let null: UInt64 = 0x7FF8_0000_0000_0000

    @inline(__always)
    public static func count(_ n: Int) -> UInt64 { UInt64(bitPattern: Int64(n)) }

    @inline(__always)
    public static func number(_ d: Double?) -> UInt64 {
        guard let d, d.isFinite else { return null }
        return d == 0 ? 0 : d.bitPattern
    }

    /// The word as the `FieldValue` it stands for (the form `Topics.payload` renders).
    public static func value(_ word: UInt64, _ kind: FieldKind) -> FieldValue {
        switch kind {
        case .count: .count(Int(Int64(bitPattern: word)))
        case .number: .number(word == null ? nil : Double(bitPattern: word))
        }
    }
}

/// Where `MetricEngine.flush` reports what changed: the series it reports for the first
/// time (the sink gives each a number, dense in its session), new values, and removals.
///
/// The worker's sink writes a `RESULT` body directly (`MetricShard`); the tests' reference
/// turns the words back into `FieldValue`s.
public protocol SeriesSink {
    /// A number for a series this engine reports for the first time; its values follow.
    mutating func introduce(_ id: SeriesID) -> UInt32
    /// New values of series `number`, one word per field of its metric's shape.
    mutating func values(_ number: UInt32, _ words: ArraySlice<UInt64>)
    /// Series `number` no longer exists.
    mutating func removed(_ number: UInt32)
}
