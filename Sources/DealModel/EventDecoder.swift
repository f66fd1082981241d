/// Turns one event frame into a validated `Event`, or the rejection naming the field.
///
/// Every rule of METRICS.md §4 lives here (`validate`, over a `JSONValue`) and in its fast
/// twin `decode(fields:)` (DirectDecoding.swift), which reads the fields a one-pass scanner
/// found in the frame. The checks run in a fixed order, so an event with several problems is
/// always reported by the same field. The fast path only ever accepts: whatever it does not
/// fully understand, and every event that breaks a rule, goes through the `JSONValue` path,
/// which alone words rejections, so a rejection is the same whichever path saw the event
/// first (Tests/DealModelTests/DirectDecodingTests.swift compares the two).
public struct EventDecoder: Sendable {
    public static let maximumIdentifierBytes = 128
    public let model: Model
    /// The model's names as bytes, for the fast path.
    let names: ModelNames

    public init(model: Model) {
        self.model = model
        self.names = ModelNames(model)
    }

    /// An owner, team or lead source as the series key it becomes: absent, null or empty is
    /// `unknown` (METRICS.md §1). Both decoding paths resolve keys here.
    static func dimensionKey(_ raw: String) -> String { raw.isEmpty ? "unknown" : raw }

    /// Decodes a JSON frame: the one-pass fast path when it accepts the event, else the
    /// `JSONValue` path (which then accepts it identically, or words the rejection).
    public func decode(json frame: [UInt8]) -> Result<Event, EventRejection> {
        if let event = decodeDirect(json: frame) { return .success(event) }
        return decodeThroughValue(json: frame)
    }

    /// Decodes a JSON frame by parsing it into a `JSONValue` and validating that: the
    /// reference path, which words every rejection.
    public func decodeThroughValue(json frame: [UInt8]) -> Result<Event, EventRejection> {
        let value: JSONValue
        do {
            value = try JSONParser.parse(frame)
        } catch {
            if error.isInvalidUTF8 { return .failure(EventRejection("event", "not valid UTF-8 JSON")) }
            return .failure(EventRejection("event", "not valid JSON (\(error))"))
        }
        return decode(value: value)
    }

    /// Validates an event already read into a `JSONValue` (from JSON text, or from another
    /// encoding that stands for the same JSON object).
    public func decode(value: JSONValue) -> Result<Event, EventRejection> {
        guard case .object = value else { return .failure(EventRejection("event", "not a JSON object")) }
        do {
            return .success(try validate(value))
        } catch {
            return .failure(error)
        }
    }

    func validate(_ ev: JSONValue) throws(EventRejection) -> Event {
        let kind: EventKind
        switch ev["kind"]?.stringValue {
        case "deal": kind = .deal
        case "deal_deleted": kind = .dealDeleted
        case "spend": kind = .spend
        case "account": kind = .account
        default: throw EventRejection("kind", "unknown or missing (expected deal, deal_deleted, spend or account)")
        }
        let source = try identifier(ev["source"], "source")
        let id = try identifier(ev["id"], "id")
        guard case .int(let version)? = ev["version"], version >= 0 else {
            throw EventRejection("version", "not an integer in 0..2^63-1")
        }
        if let occurred = ev["occurred_at"], occurred != .null {
            _ = try timestamp(occurred, "occurred_at")
        }
        let body: Event.Body
        switch kind {
        case .deal: body = .deal(try deal(ev["deal"]))
        case .dealDeleted: body = .dealDeleted
        case .spend: body = .spend(try spend(ev["spend"]))
        case .account: body = .account(try account(ev["account"]))
        }
        return Event(
            kind: kind,
            source: source,
            id: id,
            version: version,
            body: body,
            digest: ev.digest()
        )
    }

    private func identifier(_ value: JSONValue?, _ field: String) throws(EventRejection) -> String {
        guard let value, value != .null else { throw EventRejection(field, "missing") }
        guard let s = value.stringValue else { throw EventRejection(field, "not a string") }
        if s.isEmpty { throw EventRejection(field, "empty") }
        if s.utf8.count > Self.maximumIdentifierBytes {
            throw EventRejection(field, "longer than \(Self.maximumIdentifierBytes) bytes")
        }
        return s
    }

    private func timestamp(_ value: JSONValue?, _ field: String) throws(EventRejection) -> Instant {
        guard let value, value != .null else { throw EventRejection(field, "missing") }
        guard let s = value.stringValue, let instant = Timestamp.parseRFC3339(s) else {
            throw EventRejection(field, "not an RFC 3339 timestamp")
        }
        return instant
    }

    private func amount(_ value: JSONValue?, _ field: String) throws(EventRejection) -> Double {
        guard let value, value != .null else { throw EventRejection(field, "missing") }
        guard let d = value.numberValue else { throw EventRejection(field, "not a number") }
        guard d.isFinite else { throw EventRejection(field, "not finite") }
        guard d >= 0 else { throw EventRejection(field, "negative") }
        return d
    }

    func rate(_ value: JSONValue?, _ field: String) throws(EventRejection) -> Double {
        guard let code = value?.stringValue, let rate = model.fx[code] else {
            throw EventRejection(field, "no configured rate")
        }
        return rate
    }

    /// owner, team, lead_source, account: an optional string (null counts as missing).
    private func key(_ value: JSONValue?, _ field: String) throws(EventRejection) -> String {
        guard let value, value != .null else { return "" }
        guard let s = value.stringValue else { throw EventRejection(field, "not a string") }
        return s
    }

    private func deal(_ value: JSONValue?) throws(EventRejection) -> DealPayload {
        guard let d = value, case .object = d else { throw EventRejection("deal", "missing or not an object") }
        guard let pipelineName = d["pipeline"]?.stringValue, let pipeline = model.pipelineIndex(named: pipelineName)
        else {
            throw EventRejection("deal.pipeline", "not a configured pipeline")
        }
        let p = model.pipelines[pipeline]
        guard let stageName = d["stage"]?.stringValue, let stage = p.stages.firstIndex(of: stageName) else {
            throw EventRejection("deal.stage", "not a configured stage of pipeline \(pipelineName)")
        }
        let status: DealStatus
        switch d["status"]?.stringValue {
        case "open": status = .open
        case "won": status = .won
        case "lost": status = .lost
        default: throw EventRejection("deal.status", "expected open, won or lost")
        }
        let raw = try amount(d["amount"], "deal.amount")
        let fx = try rate(d["currency"], "deal.currency")
        guard (raw * fx).isFinite else { throw EventRejection("deal.amount", "not finite in the reporting currency") }
        let created = try timestamp(d["created_at"], "deal.created_at")
        var closed: Instant?
        let closedValue = d["closed_at"]
        if status == .open {
            if let closedValue, closedValue != .null {
                throw EventRejection("deal.closed_at", "must be absent when status is open")
            }
        } else {
            guard let closedValue, closedValue != .null else {
                throw EventRejection("deal.closed_at", "missing (status is \(status == .won ? "won" : "lost"))")
            }
            let c = try timestamp(closedValue, "deal.closed_at")
            if c < created { throw EventRejection("deal.closed_at", "earlier than created_at") }
            closed = c
        }
        let owner = try key(d["owner"], "deal.owner")
        let team = try key(d["team"], "deal.team")
        let leadSource = try key(d["lead_source"], "deal.lead_source")
        let account = try key(d["account"], "deal.account")
        return DealPayload(
            pipeline: pipeline,
            stage: stage,
            status: status,
            amount: raw * fx,
            owner: EventDecoder.dimensionKey(owner),
            team: EventDecoder.dimensionKey(team),
            leadSource: EventDecoder.dimensionKey(leadSource),
            account: account,
            createdAt: created,
            closedAt: closed,
            rawAmount: raw,
            currency: d["currency"]?.stringValue ?? ""
        )
    }

    private func spend(_ value: JSONValue?) throws(EventRejection) -> SpendPayload {
        guard let s = value, case .object = s else { throw EventRejection("spend", "missing or not an object") }
        let raw = try amount(s["amount"], "spend.amount")
        let fx = try rate(s["currency"], "spend.currency")
        guard (raw * fx).isFinite else { throw EventRejection("spend.amount", "not finite in the reporting currency") }
        guard let dateValue = s["date"], dateValue != .null else { throw EventRejection("spend.date", "missing") }
        guard let text = dateValue.stringValue, let date = Timestamp.parseDate(text) else {
            throw EventRejection("spend.date", "not a YYYY-MM-DD date")
        }
        let leadSource = try key(s["lead_source"], "spend.lead_source")
        return SpendPayload(
            leadSource: EventDecoder.dimensionKey(leadSource),
            amount: raw * fx,
            date: date,
            rawAmount: raw,
            currency: s["currency"]?.stringValue ?? ""
        )
    }

    private func account(_ value: JSONValue?) throws(EventRejection) -> AccountPayload {
        guard let a = value, case .object = a else { throw EventRejection("account", "missing or not an object") }
        let churned: Bool
        switch a["status"]?.stringValue {
        case "active": churned = false
        case "churned": churned = true
        default: throw EventRejection("account.status", "expected active or churned")
        }
        let changed = try timestamp(a["changed_at"], "account.changed_at")
        return AccountPayload(churned: churned, changedAt: changed)
    }
}
