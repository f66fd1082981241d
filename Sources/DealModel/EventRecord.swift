/// A validated event in the compact binary form the daemon's event log keeps.
///
/// Why it exists: replaying the log after a restart used to parse every JSON frame again,
/// hash its canonical form for the digest and validate it: about four fifths of the
/// replay's time, for work whose result was known when the event was first taken. A
/// record keeps what validation produced (kind, key, version, digest, the payload with
/// missing keys resolved) but nothing that depends on the model: pipeline and stage by
/// name, the amount with its currency before conversion. `EventDecoder.decode(record:)`
/// applies the model's rules again (configured pipeline, stage and rate), so a replay
/// under a changed model treats a record as it would have treated the frame.
///
/// Layout (little-endian): `format u8 (= 1) · kind u8 · source (u8 length, bytes) · id
/// (u8 length, bytes) · version u64 · digest u64 u64 ·` then by kind: deal `pipeline,
/// stage (u32 length, bytes) · status u8 · amount f64 · currency, owner, team,
/// lead_source, account (u32 length, bytes) · created_at i128 · has closed_at u8 ·
/// closed_at i128`; spend `lead_source · amount f64 · currency · date i128`; account
/// `churned u8 · changed_at i128`; a deletion nothing.
public enum EventRecord {
    public static let format: UInt8 = 1

    /// The record of `event`, which `EventDecoder` produced.
    public static func encode(_ event: Event, model: Model) -> [UInt8] {
        var w = BinaryWriter(capacity: 160)
        w.u8(format)
        w.u8(event.kind.rawValue)
        short(event.source, &w)
        short(event.id, &w)
        w.u64(UInt64(bitPattern: event.version))
        w.u64(event.digest.high)
        w.u64(event.digest.low)
        switch event.body {
        case .deal(let p):
            let pipeline = model.pipelines[p.pipeline]
            w.string(pipeline.name)
            w.string(pipeline.stages[p.stage])
            w.u8(p.status.rawValue)
            w.f64(p.rawAmount)
            w.string(p.currency)
            w.string(p.owner)
            w.string(p.team)
            w.string(p.leadSource)
            w.string(p.account)
            w.i128(p.createdAt.nanoseconds)
            w.u8(p.closedAt == nil ? 0 : 1)
            if let c = p.closedAt { w.i128(c.nanoseconds) }
        case .dealDeleted:
            break
        case .spend(let p):
            w.string(p.leadSource)
            w.f64(p.rawAmount)
            w.string(p.currency)
            w.i128(p.date.nanoseconds)
        case .account(let p):
            w.u8(p.churned ? 1 : 0)
            w.i128(p.changedAt.nanoseconds)
        }
        return w.bytes
    }

    private static func short(_ s: String, _ w: inout BinaryWriter) {
        let utf8 = s.utf8
        precondition(utf8.count <= Int(UInt8.max), "source and id are at most 128 bytes")
        w.u8(UInt8(utf8.count))
        for b in utf8 { w.u8(b) }
    }
}

extension EventDecoder {
    /// Decodes an `EventRecord`: a rejection (named by field, as for JSON) when the
    /// model no longer has the record's pipeline, stage or currency; a `BinaryDecodingError`
    /// when the bytes are not a record.
    public func decode(record bytes: [UInt8]) throws(BinaryDecodingError) -> Result<Event, EventRejection> {
        var r = BinaryReader(bytes)
        let format = try r.u8("event record format")
        guard format == EventRecord.format else {
            throw BinaryDecodingError("event record format \(format) is not \(EventRecord.format)")
        }
        guard let kind = EventKind(rawValue: try r.u8("event record kind")) else {
            throw BinaryDecodingError("event record of an unknown kind")
        }
        func short(_ what: String) throws(BinaryDecodingError) -> String {
            let n = Int(try r.u8(what))
            guard n > 0, n <= EventDecoder.maximumIdentifierBytes else {
                throw BinaryDecodingError("event record \(what) of \(n) bytes")
            }
            return try r.string(count: n, what)
        }
        let source = try short("source")
        let id = try short("id")
        let version = Int64(bitPattern: try r.u64("version"))
        guard version >= 0 else { throw BinaryDecodingError("event record version below zero") }
        let digest = Digest128(high: try r.u64("digest"), low: try r.u64("digest"))
        let body: Event.Body
        switch kind {
        case .deal:
            let pipelineName = try r.string("deal.pipeline")
            let stageName = try r.string("deal.stage")
            guard let statusValue = DealStatus(rawValue: try r.u8("deal.status")) else {
                throw BinaryDecodingError("event record deal.status unknown")
            }
            let raw = try r.f64("deal.amount")
            let currency = try r.string("deal.currency")
            let owner = try r.string("deal.owner")
            let team = try r.string("deal.team")
            let lead = try r.string("deal.lead_source")
            let account = try r.string("deal.account")
            let created = Instant(nanoseconds: try r.i128("deal.created_at"))
            let closed = try r.u8("deal.closed_at") != 0 ? Instant(nanoseconds: try r.i128("deal.closed_at")) : nil
            guard r.isAtEnd else { throw BinaryDecodingError("trailing bytes after an event record") }
            guard let pipeline = model.pipelineIndex(named: pipelineName) else {
                return .failure(EventRejection("deal.pipeline", "not a configured pipeline"))
            }
            guard let stage = model.pipelines[pipeline].stages.firstIndex(of: stageName) else {
                return .failure(EventRejection("deal.stage", "not a configured stage of pipeline \(pipelineName)"))
            }
            guard let fx = model.fx[currency] else {
                return .failure(EventRejection("deal.currency", "no configured rate"))
            }
            guard (raw * fx).isFinite else {
                return .failure(EventRejection("deal.amount", "not finite in the reporting currency"))
            }
            body = .deal(
                DealPayload(
                    pipeline: pipeline,
                    stage: stage,
                    status: statusValue,
                    amount: raw * fx,
                    owner: owner,
                    team: team,
                    leadSource: lead,
                    account: account,
                    createdAt: created,
                    closedAt: closed,
                    rawAmount: raw,
                    currency: currency
                )
            )
        case .dealDeleted:
            guard r.isAtEnd else { throw BinaryDecodingError("trailing bytes after an event record") }
            body = .dealDeleted
        case .spend:
            let lead = try r.string("spend.lead_source")
            let raw = try r.f64("spend.amount")
            let currency = try r.string("spend.currency")
            let date = Instant(nanoseconds: try r.i128("spend.date"))
            guard r.isAtEnd else { throw BinaryDecodingError("trailing bytes after an event record") }
            guard let fx = model.fx[currency] else {
                return .failure(EventRejection("spend.currency", "no configured rate"))
            }
            guard (raw * fx).isFinite else {
                return .failure(EventRejection("spend.amount", "not finite in the reporting currency"))
            }
            body = .spend(
                SpendPayload(leadSource: lead, amount: raw * fx, date: date, rawAmount: raw, currency: currency)
            )
        case .account:
            let churned = try r.u8("account.status") != 0
            let changed = Instant(nanoseconds: try r.i128("account.changed_at"))
            guard r.isAtEnd else { throw BinaryDecodingError("trailing bytes after an event record") }
            body = .account(AccountPayload(churned: churned, changedAt: changed))
        }
        return .success(Event(kind: kind, source: source, id: id, version: version, body: body, digest: digest))
    }
}
