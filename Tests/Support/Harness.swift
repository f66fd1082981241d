// Shared by the test targets: the model, event builders, a seeded scenario generator and
// an in-process run of the whole metric pipeline (store → engines → topics), which the
// multi-process tests use as their reference.
public import DealModel
import Foundation
public import PipelineMetrics
import Wire

/// The model the tests use: the acceptance kit's three pipelines, two currencies.
public let harnessModelJSON = #"""
    {"reporting_currency":"USD","fx":{"USD":1.0,"EUR":1.08},
     "pipelines":{"default":{"stages":["lead","qualified","proposal","negotiation"],"qualified_stage":"qualified"},
                  "renewals":{"stages":["review","quote"],"qualified_stage":"review"},
                  "Enterprise Sales":{"stages":["discovery","demo/trial"],"qualified_stage":"demo/trial"}}}
    """#

public let harnessModel: Model = try! Model.parse(Array(harnessModelJSON.utf8))

/// Runs events through the record store and every family on `shards` shards, flushing
/// after every `flushEvery` events, and returns the published state {topic: payload}.
/// With `projected`, each family gets only its `FamilyProjection` of every change, as the
/// daemon sends it.
public func publishedState(
    _ events: [String],
    shards: Int = 1,
    flushEvery: Int = 7,
    model: Model = harnessModel,
    projected: Bool = false
) -> [String: String] {
    var store = RecordStore(model: model)
    let decoder = EventDecoder(model: model)
    var engines: [MetricEngine] = []
    for family in MetricFamily.allCases {
        for shard in 0..<shards {
            engines.append(
                MetricEngine(
                    family: family,
                    model: model,
                    assignment: PartitionSet(count: 64, members: (0..<64).filter { $0 % shards == shard })
                )
            )
        }
    }
    var state: [String: String] = [:]
    var sink = ReferenceSink()
    func flush() {
        for i in engines.indices {
            sink.updates = []
            engines[i].flush(into: &sink)
            for (id, fields) in sink.updates {
                let topic = String(decoding: Topics.topic(id, strings: store.strings, model: model), as: UTF8.self)
                if let fields {
                    state[topic] = String(
                        decoding: Topics.payload(id, fields: fields, strings: store.strings, model: model),
                        as: UTF8.self
                    )
                } else {
                    precondition(state[topic] != nil, "removal of a series never published: \(topic)")
                    state[topic] = nil
                }
            }
        }
    }
    for (n, text) in events.enumerated() {
        guard case .success(let event) = decoder.decode(json: Array(text.utf8)) else { continue }
        if let change = store.apply(event).change {
            for i in engines.indices {
                if projected {
                    guard let mine = FamilyProjection(family: engines[i].family, model: model).project(change) else {
                        continue
                    }
                    engines[i].apply(mine, strings: store.strings, allKey: store.allKey)
                } else {
                    engines[i].apply(change, strings: store.strings, allKey: store.allKey)
                }
            }
        }
        if n % flushEvery == 0 { flush() }
    }
    flush()
    return state
}

/// What an engine reports, read back as series and `FieldValue`s (the form `Topics.payload`
/// renders): the reference side of every comparison with what the daemon publishes.
public struct ReferenceSink: SeriesSink {
    /// The series each number stands for (numbers are this sink's, across engines).
    public private(set) var ids: [SeriesID] = []
    /// The changes since `updates` was last emptied: new fields, or nil for a removal.
    public var updates: [(SeriesID, [(String, FieldValue)]?)] = []

    public init() {}

    public mutating func introduce(_ id: SeriesID) -> UInt32 {
        ids.append(id)
        return UInt32(ids.count - 1)
    }

    public mutating func values(_ number: UInt32, _ words: ArraySlice<UInt64>) {
        let id = ids[Int(number)]
        let fields = zip(id.metric.shape.fields, words).map { ($0.name, FieldWord.value($1, $0.kind)) }
        updates.append((id, fields))
    }

    public mutating func removed(_ number: UInt32) { updates.append((ids[Int(number)], nil)) }
}

public func deal(
    _ id: String,
    v: Int64 = 1,
    pipeline: String = "default",
    stage: String = "lead",
    status: String = "open",
    amount: Double = 100,
    created: String,
    closed: String? = nil,
    owner: String = "rep-a",
    team: String = "T1",
    lead: String = "web",
    account: String = "acme",
    source: String = "crm"
) -> String {
    let closedField = closed.map { ",\"closed_at\":\"\($0)\"" } ?? ""
    return """
        {"kind":"deal","source":"\(source)","id":"\(id)","version":\(v),"deal":{"pipeline":"\(pipeline)","stage":"\(stage)",\
        "status":"\(status)","amount":\(amount),"currency":"USD","owner":"\(owner)","team":"\(team)","lead_source":"\(lead)",\
        "account":"\(account)","created_at":"\(created)"\(closedField)}}
        """
}

public func spend(_ id: String, v: Int64 = 1, lead: String = "web", amount: Double, date: String) -> String {
    #"{"kind":"spend","source":"mkt","id":"\#(id)","version":\#(v),"spend":{"lead_source":"\#(lead)","amount":\#(amount),"currency":"USD","date":"\#(date)"}}"#
}

public func account(_ id: String, v: Int64, status: String, at: String, source: String = "crm") -> String {
    #"{"kind":"account","source":"\#(source)","id":"\#(id)","version":\#(v),"account":{"status":"\#(status)","changed_at":"\#(at)"}}"#
}

public func deletion(_ id: String, v: Int64, source: String = "crm") -> String {
    #"{"kind":"deal_deleted","source":"\#(source)","id":"\#(id)","version":\#(v)}"#
}

/// A deterministic generator (SplitMix64), so a failure can be replayed by seed.
public struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    public init(state: UInt64) { self.state = state }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

public enum Scenario {
    /// Random histories: deals that move, close, reopen, change owner or pipeline, get
    /// deleted and re-created; spend with revisions; accounts that churn and return.
    /// Versions are unique per record, so the result does not depend on order.
    public static func events(seed: UInt64, deals: Int) -> [String] {
        var rng = SplitMix64(state: seed)
        var events: [String] = []
        let stagesByPipeline = [
            "default": ["lead", "qualified", "proposal", "negotiation"], "renewals": ["review", "quote"],
            "Enterprise Sales": ["discovery", "demo/trial"],
        ]
        for d in 0..<deals {
            var version: Int64 = 0
            for _ in 0..<Int.random(in: 1...5, using: &rng) {
                version += Int64.random(in: 1...3, using: &rng)
                if Int.random(in: 0..<12, using: &rng) == 0 {
                    events.append(deletion("d\(d)", v: version, source: ["crm", "hub"][d % 2]))
                    continue
                }
                let pipeline = ["default", "default", "renewals", "Enterprise Sales"].randomElement(using: &rng)!
                let stage = stagesByPipeline[pipeline]!.randomElement(using: &rng)!
                let status = ["open", "open", "won", "lost"].randomElement(using: &rng)!
                let createdDay = Int.random(in: 1...28, using: &rng)
                let createdMonth = Int.random(in: 1...12, using: &rng)
                let created = String(
                    format: "2026-%02d-%02dT%02d:00:00Z",
                    createdMonth,
                    createdDay,
                    Int.random(in: 0...23, using: &rng)
                )
                let closed =
                    status == "open"
                    ? nil
                    : String(
                        format: "2026-%02d-%02dT23:59:59.999Z",
                        min(12, createdMonth + Int.random(in: 0...3, using: &rng)),
                        createdDay
                    )
                events.append(
                    deal(
                        "d\(d)",
                        v: version,
                        pipeline: pipeline,
                        stage: stage,
                        status: status,
                        amount: Double(Int.random(in: 0...100_000, using: &rng)) / 7,
                        created: created,
                        closed: closed,
                        owner: ["rep-1", "rep-2", "rep 3", ""].randomElement(using: &rng)!,
                        team: ["EMEA", "NA"].randomElement(using: &rng)!,
                        lead: ["web", "seo", ""].randomElement(using: &rng)!,
                        account: ["acme", "globex", "initech", ""].randomElement(using: &rng)!,
                        source: ["crm", "hub"][d % 2]
                    )
                )
            }
        }
        for s in 0..<(deals / 5) {
            for v in 1...Int64.random(in: 1...3, using: &rng) {
                events.append(
                    spend(
                        "s\(s)",
                        v: v,
                        lead: ["web", "seo", "podcast"].randomElement(using: &rng)!,
                        amount: Double(Int.random(in: 0...9000, using: &rng)),
                        date: String(format: "2026-%02d-15", Int.random(in: 1...12, using: &rng))
                    )
                )
            }
        }
        for (i, name) in ["acme", "globex", "initech"].enumerated() {
            for v in 1...Int64(3) {
                events.append(
                    account(
                        name,
                        v: v,
                        status: ["active", "churned"].randomElement(using: &rng)!,
                        at: String(format: "2026-%02d-01T00:00:00Z", Int.random(in: 1...12, using: &rng)),
                        source: ["crm", "hub"][i % 2]
                    )
                )
            }
        }
        return events
    }
}

extension FactChange {
    /// The change with string ids replaced by the strings (ids differ between stores).
    public func normalized(_ strings: StringTable) -> String {
        switch self {
        case .deal(_, let d?):
            return
                "deal \(strings[d.source]) \(strings[d.owner]) \(strings[d.team]) \(strings[d.leadSource]) \(d.account == DealFacts.noAccount ? "-" : strings[d.account]) \(d.status) \(d.furthest) \(d.amount) \(d.createdAt) \(String(describing: d.closedAt))"
        case .spend(_, let s?):
            return "spend \(strings[s.leadSource]) \(s.amount) \(s.date)"
        case .account(_, let a?):
            return "account \(strings[a.source]) \(strings[a.account]) \(String(describing: a.churnedAt))"
        default:
            return "\(self)"
        }
    }
}
