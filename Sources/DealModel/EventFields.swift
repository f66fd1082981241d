/// The fields of one event as a one-pass reader found them in its frame, before validation.
///
/// Why it exists: building a `JSONValue` tree for every event (strings, member arrays,
/// key lookups by `String` comparison) was most of the ingest thread's cost. A reader that
/// walks the frame once — the JSON scanner (`EventDecoder.decodeDirect(json:)`) or the
/// protobuf reader in `EventEncoding` — fills these slots instead: each field the schema
/// names gets its value, strings as UTF-8 slices of the frame (already unescaped and checked
/// to be valid UTF-8); members the schema does not name only add their share to the digest
/// (`Others`). `EventDecoder.decode(fields:)` then applies METRICS.md §4 and computes the
/// digest the `JSONValue` path would have computed for the same event.
///
/// The slices point into the frame (or the reader's scratch buffer): an `EventFields` is
/// valid only inside the reader's `withUnsafeBytes` call that filled it.
public struct EventFields {
    /// One field's value. Containers other than the three payload objects are never here:
    /// a reader that meets one gives up and leaves the event to the `JSONValue` path.
    public enum Value {
        case absent
        case null
        case bool(Bool)
        /// An integer literal that fits in `Int64`.
        case int(Int64)
        /// A number with a fraction or an exponent, or a protobuf `double`.
        case double(Double)
        /// Valid UTF-8, unescaped; `isASCII` when every byte is below 0x80.
        case string(UnsafeRawBufferPointer, isASCII: Bool)
        /// An object: its members are in the matching payload slots (`deal`, `spend`, `account`).
        case object

        /// A string value of `utf8`, or nil when it is not valid UTF-8.
        @inline(__always)
        public static func string(validating utf8: UnsafeRawBufferPointer) -> Value? {
            switch UTF8Check.classify(utf8) {
            case .ascii: return .string(utf8, isASCII: true)
            case .multiByte: return .string(utf8, isASCII: false)
            case .invalid: return nil
            }
        }

        var isPresent: Bool {
            if case .absent = self { return false }
            return true
        }
    }

    /// The digest share of the members of one object that have no slot (unknown extra
    /// fields, which METRICS.md §4 ignores but the duplicate check must not).
    public struct Others {
        public var high: UInt64 = 0
        public var low: UInt64 = 0
        public var count = 0
        public init() {}

        /// Adds one member of an object whose halves are hashed with `seeds`.
        @inline(__always)
        public mutating func add(key: UnsafeRawBufferPointer, value: Value, seeds: Seeds) {
            let kh = JSONHash.key(key, objectSeed: seeds.high)
            let kl = JSONHash.key(key, objectSeed: seeds.low)
            high &+= JSONHash.member(key: kh, value: value.scalarHash(seed: seeds.high &+ kh))
            low &+= JSONHash.member(key: kl, value: value.scalarHash(seed: seeds.low &+ kl))
            count += 1
        }
    }

    /// The two digest seeds of an object: the event's own, or a payload object's (which
    /// depend on the key it is under).
    public struct Seeds: Sendable {
        public var high: UInt64
        public var low: UInt64

        /// The event object.
        public static let event = Seeds(high: JSONHash.highSeed, low: JSONHash.lowSeed)
        public static let deal = Seeds.nested(under: "deal")
        public static let spend = Seeds.nested(under: "spend")
        public static let account = Seeds.nested(under: "account")

        static func nested(under key: StaticString) -> Seeds {
            let raw = UnsafeRawBufferPointer(start: key.utf8Start, count: key.utf8CodeUnitCount)
            return Seeds(
                high: JSONHash.highSeed &+ JSONHash.key(raw, objectSeed: JSONHash.highSeed),
                low: JSONHash.lowSeed &+ JSONHash.key(raw, objectSeed: JSONHash.lowSeed)
            )
        }
    }

    /// The `deal` object's slots, in the order of its keys (`set`).
    public struct Deal: EventFieldsObject {
        public var pipeline = Value.absent
        public var stage = Value.absent
        public var status = Value.absent
        public var amount = Value.absent
        public var currency = Value.absent
        public var owner = Value.absent
        public var team = Value.absent
        public var leadSource = Value.absent
        public var account = Value.absent
        public var createdAt = Value.absent
        public var closedAt = Value.absent
        public var others = Others()
        public init() {}
        static var seeds: Seeds { .deal }
        public mutating func set(_ slot: Int, _ value: Value) {
            switch slot {
            case 0: pipeline = value
            case 1: stage = value
            case 2: status = value
            case 3: amount = value
            case 4: currency = value
            case 5: owner = value
            case 6: team = value
            case 7: leadSource = value
            case 8: account = value
            case 9: createdAt = value
            default: closedAt = value
            }
        }
    }

    /// The `spend` object's slots, in the order of its keys (`set`).
    public struct Spend: EventFieldsObject {
        public var leadSource = Value.absent
        public var amount = Value.absent
        public var currency = Value.absent
        public var date = Value.absent
        public var others = Others()
        public init() {}
        static var seeds: Seeds { .spend }
        public mutating func set(_ slot: Int, _ value: Value) {
            switch slot {
            case 0: leadSource = value
            case 1: amount = value
            case 2: currency = value
            default: date = value
            }
        }
    }

    /// The `account` object's slots, in the order of its keys (`set`).
    public struct Account: EventFieldsObject {
        public var status = Value.absent
        public var changedAt = Value.absent
        public var others = Others()
        public init() {}
        static var seeds: Seeds { .account }
        public mutating func set(_ slot: Int, _ value: Value) {
            if slot == 0 { status = value } else { changedAt = value }
        }
    }

    public var kind = Value.absent
    public var source = Value.absent
    public var id = Value.absent
    public var version = Value.absent
    public var occurredAt = Value.absent
    /// `.object` when the event has a `deal` object (its members in `dealFields`).
    public var deal = Value.absent
    public var spend = Value.absent
    public var account = Value.absent
    public var dealFields = Deal()
    public var spendFields = Spend()
    public var accountFields = Account()
    public var others = Others()

    public init() {}
}

// MARK: - The digest of the JSON object the fields stand for

extension EventFields.Value {
    /// The hash of a value that is not an object.
    @inline(__always)
    func scalarHash(seed: UInt64) -> UInt64 {
        switch self {
        case .absent, .object: return 0  // never hashed: absent members are skipped, objects hashed by their slots
        case .null: return JSONHash.null(seed: seed)
        case .bool(let b): return JSONHash.bool(b, seed: seed)
        case .int(let i): return JSONHash.int(i, seed: seed)
        case .double(let d): return JSONHash.double(d, seed: seed)
        case .string(let utf8, _): return JSONHash.string(utf8, seed: seed)
        }
    }
}

/// The key hashes of the slots, per half, computed once.
private struct SlotKeys: Sendable {
    var high: [UInt64]
    var low: [UInt64]

    init(_ names: [StaticString], in seeds: EventFields.Seeds) {
        high = names.map {
            JSONHash.key(
                UnsafeRawBufferPointer(start: $0.utf8Start, count: $0.utf8CodeUnitCount),
                objectSeed: seeds.high
            )
        }
        low = names.map {
            JSONHash.key(
                UnsafeRawBufferPointer(start: $0.utf8Start, count: $0.utf8CodeUnitCount),
                objectSeed: seeds.low
            )
        }
    }

    static let event = SlotKeys(
        ["kind", "source", "id", "version", "occurred_at", "deal", "spend", "account"],
        in: .event
    )
    static let deal = SlotKeys(
        [
            "pipeline", "stage", "status", "amount", "currency", "owner", "team", "lead_source", "account",
            "created_at", "closed_at",
        ],
        in: .deal
    )
    static let spend = SlotKeys(["lead_source", "amount", "currency", "date"], in: .spend)
    static let account = SlotKeys(["status", "changed_at"], in: .account)
}

/// Sums members into one half of an object's hash.
private struct ObjectSum {
    let seed: UInt64
    let keys: [UInt64]
    var sum: UInt64
    var count: Int

    init(seed: UInt64, keys: [UInt64], others: UInt64, count: Int) {
        self.seed = seed
        self.keys = keys
        self.sum = others
        self.count = count
    }

    @inline(__always)
    mutating func add(_ slot: Int, _ value: EventFields.Value, nested: (UInt64) -> UInt64 = { _ in 0 }) {
        if case .absent = value { return }
        let k = keys[slot]
        let valueSeed = seed &+ k
        let h: UInt64
        if case .object = value { h = nested(valueSeed) } else { h = value.scalarHash(seed: valueSeed) }
        sum &+= JSONHash.member(key: k, value: h)
        count += 1
    }

    var result: UInt64 { JSONHash.object(sum: sum, count: count, seed: seed) }
}

extension EventFields {
    /// The digest of the JSON object these fields stand for: what `JSONValue.digest()` gives
    /// for the same event.
    public func digest() -> Digest128 {
        Digest128(high: hash(high: true), low: hash(high: false))
    }

    private func hash(high: Bool) -> UInt64 {
        let seed = high ? JSONHash.highSeed : JSONHash.lowSeed
        let keys = SlotKeys.event
        var o = ObjectSum(
            seed: seed,
            keys: high ? keys.high : keys.low,
            others: high ? others.high : others.low,
            count: others.count
        )
        o.add(0, kind)
        o.add(1, source)
        o.add(2, id)
        o.add(3, version)
        o.add(4, occurredAt)
        o.add(5, deal) { seed in
            let d = dealFields
            let keys = SlotKeys.deal
            var n = ObjectSum(
                seed: seed,
                keys: high ? keys.high : keys.low,
                others: high ? d.others.high : d.others.low,
                count: d.others.count
            )
            n.add(0, d.pipeline)
            n.add(1, d.stage)
            n.add(2, d.status)
            n.add(3, d.amount)
            n.add(4, d.currency)
            n.add(5, d.owner)
            n.add(6, d.team)
            n.add(7, d.leadSource)
            n.add(8, d.account)
            n.add(9, d.createdAt)
            n.add(10, d.closedAt)
            return n.result
        }
        o.add(6, spend) { seed in
            let s = spendFields
            let keys = SlotKeys.spend
            var n = ObjectSum(
                seed: seed,
                keys: high ? keys.high : keys.low,
                others: high ? s.others.high : s.others.low,
                count: s.others.count
            )
            n.add(0, s.leadSource)
            n.add(1, s.amount)
            n.add(2, s.currency)
            n.add(3, s.date)
            return n.result
        }
        o.add(7, account) { seed in
            let a = accountFields
            let keys = SlotKeys.account
            var n = ObjectSum(
                seed: seed,
                keys: high ? keys.high : keys.low,
                others: high ? a.others.high : a.others.low,
                count: a.others.count
            )
            n.add(0, a.status)
            n.add(1, a.changedAt)
            return n.result
        }
        return o.result
    }
}

// MARK: - UTF-8

/// Well-formed UTF-8 (Unicode Table 3-7: no overlong forms, no surrogates, nothing above
/// U+10FFFF), the same sequences `String(validating:as:)` accepts.
enum UTF8Check {
    enum Verdict { case ascii, multiByte, invalid }

    @inline(__always)
    static func classify(_ bytes: UnsafeRawBufferPointer) -> Verdict {
        var i = 0
        let n = bytes.count
        while i < n && bytes[i] < 0x80 { i += 1 }
        if i == n { return .ascii }
        return isValid(bytes, from: i) ? .multiByte : .invalid
    }

    static func isValid(_ bytes: UnsafeRawBufferPointer, from start: Int) -> Bool {
        var i = start
        let n = bytes.count
        while i < n {
            let lead = bytes[i]
            if lead < 0x80 {
                i += 1
                continue
            }
            let length: Int
            let low: UInt8
            let high: UInt8
            switch lead {
            case 0xC2...0xDF: (length, low, high) = (2, 0x80, 0xBF)
            case 0xE0: (length, low, high) = (3, 0xA0, 0xBF)
            case 0xE1...0xEC, 0xEE...0xEF: (length, low, high) = (3, 0x80, 0xBF)
            case 0xED: (length, low, high) = (3, 0x80, 0x9F)
            case 0xF0: (length, low, high) = (4, 0x90, 0xBF)
            case 0xF1...0xF3: (length, low, high) = (4, 0x80, 0xBF)
            case 0xF4: (length, low, high) = (4, 0x80, 0x8F)
            default: return false
            }
            guard i + length <= n, bytes[i + 1] >= low, bytes[i + 1] <= high else { return false }
            var k = 2
            while k < length {
                guard bytes[i + k] & 0xC0 == 0x80 else { return false }
                k += 1
            }
            i += length
        }
        return true
    }
}

/// A nested object of an event (`deal`, `spend`, `account`) as a reader fills it: a slot
/// per key of the schema, by the key's index, and the hash of any other member.
protocol EventFieldsObject {
    /// Where the hash of its unknown members starts (see `EventFields.Seeds`).
    static var seeds: EventFields.Seeds { get }
    var others: EventFields.Others { get set }
    /// Sets the slot of the schema's key number `slot`.
    mutating func set(_ slot: Int, _ value: EventFields.Value)
}
