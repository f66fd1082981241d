/// Names a model gives meaning to (pipelines, their stages, currencies), matched as bytes.
///
/// Why it exists: the fast path compares a name in the frame with the model's names without
/// making a `String` of it. Byte equality is `String` equality only when both sides are
/// ASCII (Swift compares strings by canonical equivalence: `"\u{212A}"`, the Kelvin sign, is
/// equal to `"K"`), so a table with a non-ASCII name, a name in the frame that is not
/// ASCII, or a table too large to scan makes a `String` and asks the model exactly as the
/// `JSONValue` path does.
struct NameTable: Sendable {
    private let names: [[UInt8]]
    private let byBytes: Bool

    init(_ names: [String]) {
        self.names = names.map { Array($0.utf8) }
        self.byBytes = names.count <= 32 && names.allSatisfy { $0.utf8.allSatisfy { $0 < 0x80 } }
    }

    /// What the name `utf8` stands for: `position` of its place in the table when bytes
    /// decide, else `slow` (the model's own lookup, by `String`).
    @inline(__always)
    func lookup<T>(
        _ utf8: UnsafeRawBufferPointer,
        isASCII: Bool,
        position: (Int) -> T,
        slow: (String) -> T?
    ) -> T? {
        guard byBytes && isASCII else { return slow(String(decoding: utf8, as: UTF8.self)) }
        for (i, name) in names.enumerated() where name.count == utf8.count {
            if name.withUnsafeBytes({ equal($0, utf8) }) { return position(i) }
        }
        return nil
    }
}

@inline(__always)
func equal(_ a: UnsafeRawBufferPointer, _ b: UnsafeRawBufferPointer) -> Bool {
    guard a.count == b.count else { return false }
    var i = 0
    while i < a.count {
        if a[i] != b[i] { return false }
        i += 1
    }
    return true
}

@inline(__always)
func equal(_ a: UnsafeRawBufferPointer, _ b: StaticString) -> Bool {
    equal(a, UnsafeRawBufferPointer(start: b.utf8Start, count: b.utf8CodeUnitCount))
}

/// The model's pipelines, stages and currencies as `NameTable`s.
struct ModelNames: Sendable {
    let pipelines: NameTable
    let stages: [NameTable]
    let currencies: NameTable
    let rates: [Double]

    init(_ model: Model) {
        pipelines = NameTable(model.pipelines.map(\.name))
        stages = model.pipelines.map { NameTable($0.stages) }
        let fx = Array(model.fx)
        currencies = NameTable(fx.map(\.key))
        rates = fx.map(\.value)
    }
}

extension EventDecoder {
    /// Validates the fields a one-pass reader found (`EventFields`): the event the
    /// `JSONValue` path gives for the same object, digest included, or nil when any rule of
    /// METRICS.md §4 is broken (the caller then runs the `JSONValue` path, which words the
    /// rejection). The same checks as `validate`, in the same order.
    public func decode(fields f: EventFields) -> Event? {
        guard case .string(let kindText, true) = f.kind else { return nil }
        let kind: EventKind
        if equal(kindText, "deal") {
            kind = .deal
        } else if equal(kindText, "deal_deleted") {
            kind = .dealDeleted
        } else if equal(kindText, "spend") {
            kind = .spend
        } else if equal(kindText, "account") {
            kind = .account
        } else {
            return nil
        }
        guard let source = identifier(f.source), let id = identifier(f.id) else { return nil }
        guard case .int(let version) = f.version, version >= 0 else { return nil }
        switch f.occurredAt {
        case .absent, .null: break
        case .string(let text, _): guard Timestamp.parseRFC3339(utf8: text) != nil else { return nil }
        default: return nil
        }
        let body: Event.Body
        switch kind {
        case .deal:
            guard case .object = f.deal, let d = deal(f.dealFields) else { return nil }
            body = .deal(d)
        case .dealDeleted: body = .dealDeleted
        case .spend:
            guard case .object = f.spend, let s = spend(f.spendFields) else { return nil }
            body = .spend(s)
        case .account:
            guard case .object = f.account, let a = account(f.accountFields) else { return nil }
            body = .account(a)
        }
        return Event(kind: kind, source: source, id: id, version: version, body: body, digest: f.digest())
    }

    @inline(__always)
    private func identifier(_ value: EventFields.Value) -> String? {
        guard case .string(let utf8, _) = value, utf8.count > 0, utf8.count <= Self.maximumIdentifierBytes else {
            return nil
        }
        return String(decoding: utf8, as: UTF8.self)
    }

    @inline(__always)
    private func timestamp(_ value: EventFields.Value) -> Instant? {
        guard case .string(let utf8, _) = value else { return nil }
        return Timestamp.parseRFC3339(utf8: utf8)
    }

    @inline(__always)
    private func amount(_ value: EventFields.Value) -> Double? {
        let d: Double
        switch value {
        case .int(let i): d = Double(i)
        case .double(let v): d = v
        default: return nil
        }
        guard d.isFinite, d >= 0 else { return nil }
        return d
    }

    @inline(__always)
    private func rate(_ value: EventFields.Value) -> Double? {
        guard case .string(let code, let ascii) = value else { return nil }
        return names.currencies.lookup(code, isASCII: ascii, position: { names.rates[$0] }, slow: { model.fx[$0] })
    }

    /// owner, team, lead_source, account: absent or null is "", a string is itself, and
    /// anything else is refused (nil).
    @inline(__always)
    private func key(_ value: EventFields.Value) -> String? {
        switch value {
        case .absent, .null: return ""
        case .string(let utf8, _): return String(decoding: utf8, as: UTF8.self)
        default: return nil
        }
    }

    private func deal(_ d: EventFields.Deal) -> DealPayload? {
        guard case .string(let pipelineName, let pipelineASCII) = d.pipeline,
            let pipeline = names.pipelines.lookup(
                pipelineName,
                isASCII: pipelineASCII,
                position: { $0 },
                slow: { model.pipelineIndex(named: $0) }
            )
        else { return nil }
        guard case .string(let stageName, let stageASCII) = d.stage,
            let stage = names.stages[pipeline].lookup(
                stageName,
                isASCII: stageASCII,
                position: { $0 },
                slow: { model.pipelines[pipeline].stages.firstIndex(of: $0) }
            )
        else { return nil }
        guard case .string(let statusText, true) = d.status else { return nil }
        let status: DealStatus
        if equal(statusText, "open") {
            status = .open
        } else if equal(statusText, "won") {
            status = .won
        } else if equal(statusText, "lost") {
            status = .lost
        } else {
            return nil
        }
        guard let raw = amount(d.amount), let fx = rate(d.currency), (raw * fx).isFinite else { return nil }
        guard let created = timestamp(d.createdAt) else { return nil }
        var closed: Instant?
        if status == .open {
            switch d.closedAt {
            case .absent, .null: break
            default: return nil
            }
        } else {
            guard let c = timestamp(d.closedAt), c >= created else { return nil }
            closed = c
        }
        guard let owner = key(d.owner), let team = key(d.team), let leadSource = key(d.leadSource),
            let account = key(d.account)
        else { return nil }
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
            currency: key(d.currency) ?? ""
        )
    }

    private func spend(_ s: EventFields.Spend) -> SpendPayload? {
        guard let raw = amount(s.amount), let fx = rate(s.currency), (raw * fx).isFinite else { return nil }
        guard case .string(let text, _) = s.date, let date = Timestamp.parseDate(utf8: text) else { return nil }
        guard let leadSource = key(s.leadSource) else { return nil }
        return SpendPayload(
            leadSource: EventDecoder.dimensionKey(leadSource),
            amount: raw * fx,
            date: date,
            rawAmount: raw,
            currency: key(s.currency) ?? ""
        )
    }

    private func account(_ a: EventFields.Account) -> AccountPayload? {
        guard case .string(let statusText, true) = a.status else { return nil }
        let churned: Bool
        if equal(statusText, "active") {
            churned = false
        } else if equal(statusText, "churned") {
            churned = true
        } else {
            return nil
        }
        guard let changed = timestamp(a.changedAt) else { return nil }
        return AccountPayload(churned: churned, changedAt: changed)
    }
}
