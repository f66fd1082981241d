public import DealModel

/// A reproducible stream of realistic events for load tests, benchmarks and chaos runs.
///
/// Deals of the model's pipelines move forward (sometimes skipping or going back a
/// stage), change amount, close won or lost and are sometimes deleted; channels get
/// monthly spend; accounts churn. Versions grow per record, so a resend or a reordering
/// of the stream never changes the final metrics. The same seed gives the same bytes.
public struct SyntheticEvents: Sequence, IteratorProtocol {
    public struct Options: Sendable {
        public var deals = 10_000
        public var updatesPerDeal = 5
        public var seed: UInt64 = 1
        public var sources = ["crm-eu", "crm-na", "crm-apac"]
        public init() {}
    }

    let options: Options
    let pipelines: [Model.Pipeline]
    let currencies: [String]
    var rng: UInt64
    var deal = 0
    var step = 0
    var version: Int64 = 0
    var extra = 0

    public init(model: Model, options: Options) {
        self.options = options
        self.pipelines = model.pipelines
        self.currencies = model.fx.keys.sorted()
        self.rng = options.seed &* 0x9E37_79B9_7F4A_7C15 | 1
    }

    mutating func random(_ n: Int) -> Int {
        rng ^= rng << 13
        rng ^= rng >> 7
        rng ^= rng << 17
        return Int(rng % UInt64(n))
    }

    /// The next event as one line of JSON, or nil at the end.
    public mutating func next() -> [UInt8]? {
        // Every 50 deal events, a spend or an account event.
        extra += 1
        if extra % 50 == 0 { return sideEvent() }
        guard deal < options.deals else { return nil }
        let d = deal
        if step == 0 { version = Int64(1_700_000_000_000 + random(1_000_000)) }
        version += Int64(1 + random(60_000))
        let last = step == options.updatesPerDeal - 1
        step += 1
        if last {
            step = 0
            deal += 1
        }
        let source = options.sources[d % options.sources.count]
        if last && random(40) == 0 {
            return Array(#"{"kind":"deal_deleted","source":"\#(source)","id":"d\#(d)","version":\#(version)}"#.utf8)
        }
        let pipeline = pipelines[(d / 7) % pipelines.count]
        let stage = Swift.min(pipeline.stages.count - 1, step == 0 ? 0 : random(pipeline.stages.count))
        let status = last ? ["won", "lost", "open"][random(3)] : "open"
        let createdMonth = 1 + (d / 13) % 12
        let createdDay = 1 + d % 28
        let created = "2026-\(pad(createdMonth))-\(pad(createdDay))T\(pad(d % 24)):00:00Z"
        var out = #"{"kind":"deal","source":"\#(source)","id":"d\#(d)","version":\#(version),"deal":{"pipeline":"#
        var bytes = Array(out.utf8)
        JSONWriter.appendString(pipeline.name, to: &bytes)
        bytes.append(contentsOf: Array(#","stage":"#.utf8))
        JSONWriter.appendString(pipeline.stages[stage], to: &bytes)
        out =
            #","status":"\#(status)","amount":\#(100 + random(50_000)),"currency":"\#(currencies[d % currencies.count])","#
        out +=
            #""owner":"rep-\#(d % 200)","team":"team-\#(d % 20)","lead_source":"\#(["web", "seo", "events", "partner", "outbound", "referral", "ads", ""][d % 8])","#
        out += #""account":"acct-\#(d % Swift.max(1, options.deals / 5))","created_at":"\#(created)""#
        if status != "open" {
            let closedMonth = Swift.min(12, createdMonth + random(3))
            out += #","closed_at":"2026-\#(pad(closedMonth))-\#(pad(Swift.min(28, createdDay + random(5))))T23:00:00Z""#
        }
        out += "}}"
        bytes.append(contentsOf: Array(out.utf8))
        return bytes
    }

    private mutating func sideEvent() -> [UInt8] {
        if random(2) == 0 {
            let channel = ["web", "seo", "events", "partner", "outbound", "referral", "ads", "podcast"][random(8)]
            let month = 1 + random(12)
            return Array(
                #"{"kind":"spend","source":"marketing","id":"\#(channel)-\#(month)","version":\#(extra),"spend":{"lead_source":"\#(channel)","amount":\#(random(20_000)),"currency":"\#(currencies[0])","date":"2026-\#(pad(month))-15"}}"#
                    .utf8
            )
        }
        let account = random(Swift.max(1, options.deals / 5))
        let status = random(3) == 0 ? "churned" : "active"
        return Array(
            #"{"kind":"account","source":"\#(options.sources[account % options.sources.count])","id":"acct-\#(account)","version":\#(extra),"account":{"status":"\#(status)","changed_at":"2026-\#(pad(1 + random(12)))-01T00:00:00Z"}}"#
                .utf8
        )
    }

    private func pad(_ v: Int) -> String { v < 10 ? "0\(v)" : String(v) }
}
