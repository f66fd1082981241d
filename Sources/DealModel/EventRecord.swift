#if canImport(Glibc)
import Glibc
#endif

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
    /// when the bytes are not a record. `decodeFields(record:)` with the strings made: one
    /// decoder of the format, whichever form the caller needs.
    public func decode(record bytes: [UInt8]) throws(BinaryDecodingError) -> Result<Event, EventRejection> {
        try decodeFields(record: bytes).map { $0.event(model: model) }
    }
}

/// An `EventRecord` decoded and checked against the model without making a `String` of
/// any field: its strings stay byte ranges of the record, which the record store interns
/// from the bytes (`RecordStore.apply(_: RecordFields)`).
///
/// Why it exists: a restart from the log alone replays every record of a checkpoint
/// interval. Decoding a record into an `Event` made nine strings (source, id, pipeline,
/// stage, currency, owner, team, lead source, account), and the store then hashed four of
/// them again with `Hasher` to intern them; both were a large part of the replay
/// (docs/performance.md, "Restart, third attempt"). `EventDecoder.decode(record:)` is
/// this with the strings made, so a record is skipped or taken the same way in both forms.
public struct RecordFields: Sendable {
    /// A field's bytes: `count` bytes from `start` in `bytes`.
    public struct Span: Sendable, Equatable {
        var start: UInt32
        var count: UInt32
        static let empty = Span(start: 0, count: 0)
    }

    /// The whole record, when it was decoded from its own array (`decodeFields(record:)`);
    /// empty when it was decoded in place in a larger buffer (`decodeFields(record:at:)`),
    /// which the spans then index.
    public internal(set) var bytes: [UInt8]
    public var kind: EventKind
    var source: Span
    var id: Span
    public var version: Int64
    public var digest: Digest128
    // deal
    var pipeline = 0
    var stage = 0
    var status = DealStatus.open
    /// In the reporting currency (deal and spend).
    var amount = 0.0
    /// The record's own amount and currency, before conversion (deal and spend).
    var rawAmount = 0.0
    var currency = Span.empty
    var owner = Span.empty
    var team = Span.empty
    /// The deal's or the spend's lead source.
    var leadSource = Span.empty
    var account = Span.empty
    var createdAt = Instant(nanoseconds: 0)
    var closedAt: Instant?
    // spend
    var date = Instant(nanoseconds: 0)
    // account
    var churned = false
    var changedAt = Instant(nanoseconds: 0)

    init(bytes: [UInt8], kind: EventKind, source: Span, id: Span, version: Int64, digest: Digest128) {
        self.bytes = bytes
        self.kind = kind
        self.source = source
        self.id = id
        self.version = version
        self.digest = digest
    }

    /// The bytes of `span` (valid only inside `bytes.withUnsafeBytes`).
    @inline(__always)
    static func slice(_ raw: UnsafeRawBufferPointer, _ span: Span) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(rebasing: raw[Int(span.start)..<Int(span.start + span.count)])
    }

    /// The event with its strings made (`EventDecoder.decode(record:)`): for the callers
    /// that need an `Event`.
    public func event(model: Model) -> Event {
        bytes.withUnsafeBytes { raw in
            func text(_ span: Span) -> String { String(decoding: RecordFields.slice(raw, span), as: UTF8.self) }
            let body: Event.Body
            switch kind {
            case .deal:
                body = .deal(
                    DealPayload(
                        pipeline: pipeline,
                        stage: stage,
                        status: status,
                        amount: amount,
                        owner: text(owner),
                        team: text(team),
                        leadSource: text(leadSource),
                        account: text(account),
                        createdAt: createdAt,
                        closedAt: closedAt,
                        rawAmount: rawAmount,
                        currency: text(currency)
                    )
                )
            case .dealDeleted: body = .dealDeleted
            case .spend:
                body = .spend(
                    SpendPayload(
                        leadSource: text(leadSource),
                        amount: amount,
                        date: date,
                        rawAmount: rawAmount,
                        currency: text(currency)
                    )
                )
            case .account: body = .account(AccountPayload(churned: churned, changedAt: changedAt))
            }
            return Event(kind: kind, source: text(source), id: text(id), version: version, body: body, digest: digest)
        }
    }
}

extension EventDecoder {
    /// Decodes an `EventRecord` into `RecordFields`, without making strings: a rejection
    /// when the model no longer has the record's pipeline, stage or currency, a
    /// `BinaryDecodingError` when the bytes are not a record (a string not UTF-8 included).
    public func decodeFields(record bytes: [UInt8]) throws(BinaryDecodingError) -> Result<RecordFields, EventRejection>
    {
        // `Array.withUnsafeBytes` rethrows untyped errors: the outcome comes out as a value.
        let outcome = bytes.withUnsafeBytes { raw in
            Result { () throws(BinaryDecodingError) -> Result<RecordFields, EventRejection> in
                try decodeFields(raw, base: 0)
            }
        }
        return try outcome.get().map { fields in
            var fields = fields
            fields.bytes = bytes
            return fields
        }
    }

    /// Decodes the record `record`, which a buffer holds from offset `base`: the fields'
    /// spans index that buffer, which the caller hands to `RecordStore.apply(_:in:)` with
    /// them (a replay copies a batch's records into one buffer: no array per record).
    public func decodeFields(
        record: UnsafeRawBufferPointer,
        at base: Int
    ) throws(BinaryDecodingError) -> Result<RecordFields, EventRejection> {
        try decodeFields(record, base: base)
    }

    private func decodeFields(
        _ raw: UnsafeRawBufferPointer,
        base: Int
    ) throws(BinaryDecodingError) -> Result<RecordFields, EventRejection> {
        var r = RawRecordReader(raw: raw, base: base)
        let format = try r.u8("event record format")
        guard format == EventRecord.format else {
            throw BinaryDecodingError("event record format \(format) is not \(EventRecord.format)")
        }
        guard let kind = EventKind(rawValue: try r.u8("event record kind")) else {
            throw BinaryDecodingError("event record of an unknown kind")
        }
        func short(_ what: String) throws(BinaryDecodingError) -> RecordFields.Span {
            let n = Int(try r.u8(what))
            guard n > 0, n <= EventDecoder.maximumIdentifierBytes else {
                throw BinaryDecodingError("event record \(what) of \(n) bytes")
            }
            return try r.text(count: n, what).span
        }
        let source = try short("source")
        let id = try short("id")
        let version = Int64(bitPattern: try r.u64("version"))
        guard version >= 0 else { throw BinaryDecodingError("event record version below zero") }
        let digest = Digest128(high: try r.u64("digest"), low: try r.u64("digest"))
        var f = RecordFields(bytes: [], kind: kind, source: source, id: id, version: version, digest: digest)
        switch kind {
        case .deal:
            let pipelineName = try r.text("deal.pipeline")
            let stageName = try r.text("deal.stage")
            guard let statusValue = DealStatus(rawValue: try r.u8("deal.status")) else {
                throw BinaryDecodingError("event record deal.status unknown")
            }
            let raw = try r.f64("deal.amount")
            let currency = try r.text("deal.currency")
            f.owner = try r.text("deal.owner").span
            f.team = try r.text("deal.team").span
            f.leadSource = try r.text("deal.lead_source").span
            f.account = try r.text("deal.account").span
            f.createdAt = Instant(nanoseconds: try r.i128("deal.created_at"))
            f.closedAt = try r.u8("deal.closed_at") != 0 ? Instant(nanoseconds: try r.i128("deal.closed_at")) : nil
            guard r.isAtEnd else { throw BinaryDecodingError("trailing bytes after an event record") }
            guard
                let pipeline = names.pipelines.lookup(
                    r.bytes(pipelineName),
                    isASCII: pipelineName.isASCII,
                    position: { $0 },
                    slow: { model.pipelineIndex(named: $0) }
                )
            else {
                return .failure(EventRejection("deal.pipeline", "not a configured pipeline"))
            }
            guard
                let stage = names.stages[pipeline].lookup(
                    r.bytes(stageName),
                    isASCII: stageName.isASCII,
                    position: { $0 },
                    slow: { model.pipelines[pipeline].stages.firstIndex(of: $0) }
                )
            else {
                let name = String(decoding: r.bytes(pipelineName), as: UTF8.self)
                return .failure(EventRejection("deal.stage", "not a configured stage of pipeline \(name)"))
            }
            guard let fx = rate(r.bytes(currency), isASCII: currency.isASCII) else {
                return .failure(EventRejection("deal.currency", "no configured rate"))
            }
            guard (raw * fx).isFinite else {
                return .failure(EventRejection("deal.amount", "not finite in the reporting currency"))
            }
            f.pipeline = pipeline
            f.stage = stage
            f.status = statusValue
            f.amount = raw * fx
            f.rawAmount = raw
            f.currency = currency.span
        case .dealDeleted:
            guard r.isAtEnd else { throw BinaryDecodingError("trailing bytes after an event record") }
        case .spend:
            f.leadSource = try r.text("spend.lead_source").span
            let raw = try r.f64("spend.amount")
            let currency = try r.text("spend.currency")
            f.date = Instant(nanoseconds: try r.i128("spend.date"))
            guard r.isAtEnd else { throw BinaryDecodingError("trailing bytes after an event record") }
            guard let fx = rate(r.bytes(currency), isASCII: currency.isASCII) else {
                return .failure(EventRejection("spend.currency", "no configured rate"))
            }
            guard (raw * fx).isFinite else {
                return .failure(EventRejection("spend.amount", "not finite in the reporting currency"))
            }
            f.amount = raw * fx
            f.rawAmount = raw
            f.currency = currency.span
        case .account:
            f.churned = try r.u8("account.status") != 0
            f.changedAt = Instant(nanoseconds: try r.i128("account.changed_at"))
            guard r.isAtEnd else { throw BinaryDecodingError("trailing bytes after an event record") }
        }
        return .success(f)
    }

    @inline(__always)
    private func rate(_ code: UnsafeRawBufferPointer, isASCII: Bool) -> Double? {
        names.currencies.lookup(code, isASCII: isASCII, position: { names.rates[$0] }, slow: { model.fx[$0] })
    }
}

/// Reads an `EventRecord`'s fields in place, as `BinaryReader` does but over the record's
/// bytes without copying: strings are checked for UTF-8 (ASCII by a word at a time, the
/// rest as `BinaryReader.string(count:)` checks it) and kept as spans.
struct RawRecordReader {
    let raw: UnsafeRawBufferPointer
    /// Where `raw` starts in the buffer the spans index.
    let base: Int
    private(set) var offset = 0

    init(raw: UnsafeRawBufferPointer, base: Int) {
        self.raw = raw
        self.base = base
    }

    var isAtEnd: Bool { offset == raw.count }

    struct Text {
        /// In the buffer the spans index.
        var span: RecordFields.Span
        /// In `raw`.
        var local: RecordFields.Span
        var isASCII: Bool
    }

    @inline(__always)
    private mutating func take(_ n: Int, _ what: String) throws(BinaryDecodingError) -> Int {
        guard n >= 0, offset + n <= raw.count else { throw BinaryDecodingError("truncated message reading \(what)") }
        defer { offset += n }
        return offset
    }

    @inline(__always)
    mutating func u8(_ what: String) throws(BinaryDecodingError) -> UInt8 { raw[try take(1, what)] }

    @inline(__always)
    mutating func u32(_ what: String) throws(BinaryDecodingError) -> UInt32 {
        UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: try take(4, what), as: UInt32.self))
    }

    @inline(__always)
    mutating func u64(_ what: String) throws(BinaryDecodingError) -> UInt64 {
        UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: try take(8, what), as: UInt64.self))
    }

    @inline(__always)
    mutating func i128(_ what: String) throws(BinaryDecodingError) -> Int128 {
        let low = try u64(what)
        let high = try u64(what)
        return Int128(Int64(bitPattern: high)) << 64 | Int128(low)
    }

    @inline(__always)
    mutating func f64(_ what: String) throws(BinaryDecodingError) -> Double { Double(bitPattern: try u64(what)) }

    /// A string written with its u32 length.
    mutating func text(_ what: String) throws(BinaryDecodingError) -> Text {
        try text(count: Int(try u32(what)), what)
    }

    /// `n` bytes of UTF-8.
    mutating func text(count n: Int, _ what: String) throws(BinaryDecodingError) -> Text {
        let o = try take(n, what)
        let bytes = UnsafeRawBufferPointer(rebasing: raw[o..<o + n])
        let ascii = RawRecordReader.isASCII(bytes)
        if !ascii && !UTF8Check.isValid(bytes, from: 0) { throw BinaryDecodingError("\(what) is not UTF-8") }
        return Text(
            span: RecordFields.Span(start: UInt32(base + o), count: UInt32(n)),
            local: RecordFields.Span(start: UInt32(o), count: UInt32(n)),
            isASCII: ascii
        )
    }

    func bytes(_ text: Text) -> UnsafeRawBufferPointer { RecordFields.slice(raw, text.local) }

    @inline(__always)
    static func isASCII(_ bytes: UnsafeRawBufferPointer) -> Bool {
        var i = 0
        let n = bytes.count
        var bits: UInt64 = 0
        while i + 8 <= n {
            bits |= bytes.loadUnaligned(fromByteOffset: i, as: UInt64.self)
            i += 8
        }
        while i < n {
            bits |= UInt64(bytes[i])
            i += 1
        }
        return bits & 0x8080_8080_8080_8080 == 0
    }
}
