extension EventDecoder {
    /// The ingest fast path for JSON: one pass over the frame into `EventFields` (keys
    /// matched as bytes, strings without escapes taken as slices of the frame, numbers read
    /// in place), then `decode(fields:)`. No `JSONValue` is built.
    ///
    /// It accepts only what it fully understands: a valid event whose members are the
    /// schema's fields or unknown fields with scalar values. On anything else — a syntax
    /// error, a repeated key, a key with an escape or a non-ASCII byte, an array or an
    /// unexpected object, an integer beyond `Int64`, a broken rule — it returns nil and
    /// `decode(json:)` runs the `JSONValue` path, which gives the same event or words the
    /// rejection.
    public func decodeDirect(json frame: [UInt8]) -> Event? {
        frame.withUnsafeBytes { raw -> Event? in
            guard raw.count > 0 else { return nil }
            var scanner = JSONEventScanner(bytes: raw)
            defer { scanner.scratch?.deallocate() }
            var fields = EventFields()
            guard scanner.scanEvent(into: &fields) else { return nil }
            return decode(fields: fields)
        }
    }
}

/// The byte-level scanner behind `EventDecoder.decodeDirect(json:)`: RFC 8259 exactly as
/// strict as `JSONParser` on what it accepts (the same whitespace, literals, number and
/// string grammar, escapes and UTF-8 rules), giving up (false) wherever the fast path does
/// not go.
struct JSONEventScanner {
    let bytes: UnsafeRawBufferPointer
    var i = 0
    /// Unescaped strings, allocated at the first escape. Never longer than the frame: an
    /// escape is never shorter than what it stands for.
    var scratch: UnsafeMutableRawBufferPointer?
    var scratchUsed = 0

    init(bytes: UnsafeRawBufferPointer) { self.bytes = bytes }

    private typealias Value = EventFields.Value

    // MARK: Structure

    @inline(__always)
    private mutating func skipWhitespace() {
        while i < bytes.count {
            switch bytes[i] {
            case 0x20, 0x09, 0x0A, 0x0D: i += 1
            default: return
            }
        }
    }

    /// Consumes `c` (after whitespace) or fails.
    @inline(__always)
    private mutating func expect(_ c: UInt8) -> Bool {
        skipWhitespace()
        guard i < bytes.count, bytes[i] == c else { return false }
        i += 1
        return true
    }

    mutating func scanEvent(into f: inout EventFields) -> Bool {
        guard expect(UInt8(ascii: "{")) else { return false }
        var seen: UInt32 = 0
        var unknownKeys: [Range<Int>] = []
        var first = true
        while true {
            switch next(first: &first) {
            case .fail: return false
            case .end:
                skipWhitespace()
                return i == bytes.count
            case .key(let key):
                guard let slot = Self.eventKeys.slot(key) else {
                    guard unknown(key, seeds: .event, others: &f.others, seen: &unknownKeys) else { return false }
                    continue
                }
                guard seen & (1 << slot) == 0 else { return false }
                seen |= 1 << slot
                if slot >= 5 && i < bytes.count && bytes[i] == UInt8(ascii: "{") {
                    i += 1
                    let scanned: Bool
                    switch slot {
                    case 5: scanned = scanMembers(into: &f.dealFields, keys: Self.dealKeys)
                    case 6: scanned = scanMembers(into: &f.spendFields, keys: Self.spendKeys)
                    default: scanned = scanMembers(into: &f.accountFields, keys: Self.accountKeys)
                    }
                    guard scanned else { return false }
                    f.setSlot(slot, .object)
                } else {
                    guard let value = scalar() else { return false }
                    f.setSlot(slot, value)
                }
            }
        }
    }

    /// The members of a nested object (`deal`, `spend`, `account`) whose `{` was
    /// consumed, through its `}`: each of the schema's keys once, with a scalar value, into
    /// its slot; any other key's scalar hashed into `others`.
    private mutating func scanMembers<Object: EventFieldsObject>(into o: inout Object, keys: KeyTable) -> Bool {
        var seen: UInt32 = 0
        var unknownKeys: [Range<Int>] = []
        var first = true
        while true {
            switch next(first: &first) {
            case .fail: return false
            case .end: return true
            case .key(let key):
                guard let slot = keys.slot(key) else {
                    guard unknown(key, seeds: Object.seeds, others: &o.others, seen: &unknownKeys) else { return false }
                    continue
                }
                guard seen & (1 << slot) == 0, let value = scalar() else { return false }
                seen |= 1 << slot
                o.set(slot, value)
            }
        }
    }

    private enum Step {
        case key(UnsafeRawBufferPointer)
        case end
        case fail
    }

    /// In an object, after its `{` (`first`) or after a member's value: the next member's
    /// key, its `:` and the whitespace after it consumed; or the object's `}`.
    @inline(__always)
    private mutating func next(first: inout Bool) -> Step {
        skipWhitespace()
        if first {
            first = false
            if i < bytes.count && bytes[i] == UInt8(ascii: "}") {
                i += 1
                return .end
            }
        } else {
            guard i < bytes.count else { return .fail }
            let c = bytes[i]
            i += 1
            if c == UInt8(ascii: "}") { return .end }
            guard c == UInt8(ascii: ",") else { return .fail }
            skipWhitespace()
        }
        guard i < bytes.count, bytes[i] == UInt8(ascii: "\""), let key = plainKey() else { return .fail }
        guard expect(UInt8(ascii: ":")) else { return .fail }
        skipWhitespace()
        return .key(key)
    }

    /// A key at `i` (the opening quote) of plain ASCII without escapes; nil otherwise (a key
    /// with an escape or a non-ASCII byte could equal another one only as a `String`, which
    /// is the `JSONValue` path's business).
    @inline(__always)
    private mutating func plainKey() -> UnsafeRawBufferPointer? {
        let start = i + 1
        var k = start
        while k < bytes.count {
            let c = bytes[k]
            if c == UInt8(ascii: "\"") {
                i = k + 1
                return UnsafeRawBufferPointer(rebasing: bytes[start..<k])
            }
            guard c >= 0x20, c < 0x80, c != UInt8(ascii: "\\") else { return nil }
            k += 1
        }
        return nil
    }

    /// A member the schema does not name: a scalar value, hashed into `others`; a key
    /// repeated among them (bytes, as all these keys are plain ASCII) gives up.
    private mutating func unknown(
        _ key: UnsafeRawBufferPointer,
        seeds: EventFields.Seeds,
        others: inout EventFields.Others,
        seen: inout [Range<Int>]
    ) -> Bool {
        let start = key.baseAddress! - bytes.baseAddress!
        for r in seen where r.count == key.count {
            if equal(UnsafeRawBufferPointer(rebasing: bytes[r]), key) { return false }
        }
        seen.append(start..<start + key.count)
        guard let value = scalar() else { return false }
        others.add(key: key, value: value, seeds: seeds)
        return true
    }

    // MARK: Keys of the schema

    /// A key of up to 16 bytes as two little-endian words, for comparing with the schema's.
    @inline(__always)
    private static func pack(_ key: UnsafeRawBufferPointer) -> (UInt64, UInt64) {
        var a: UInt64 = 0
        var b: UInt64 = 0
        var k = 0
        while k < key.count && k < 8 {
            a |= UInt64(key[k]) << (8 * UInt64(k))
            k += 1
        }
        while k < key.count {
            b |= UInt64(key[k]) << (8 * UInt64(k - 8))
            k += 1
        }
        return (a, b)
    }

    private struct KeyTable: Sendable {
        let words: [(UInt64, UInt64, Int)]
        init(_ names: [StaticString]) {
            words = names.map {
                let (a, b) = JSONEventScanner.pack(
                    UnsafeRawBufferPointer(start: $0.utf8Start, count: $0.utf8CodeUnitCount)
                )
                return (a, b, $0.utf8CodeUnitCount)
            }
        }

        @inline(__always)
        func slot(_ key: UnsafeRawBufferPointer) -> Int? {
            guard key.count <= 16 else { return nil }
            let (a, b) = JSONEventScanner.pack(key)
            for (n, w) in words.enumerated() where w.2 == key.count && w.0 == a && w.1 == b { return n }
            return nil
        }
    }

    // The order of each table is the order of the slots in `EventFields` (and its digest).
    private static let eventKeys = KeyTable([
        "kind", "source", "id", "version", "occurred_at", "deal", "spend", "account",
    ])
    private static let dealKeys = KeyTable([
        "pipeline", "stage", "status", "amount", "currency", "owner", "team", "lead_source", "account", "created_at",
        "closed_at",
    ])
    private static let spendKeys = KeyTable(["lead_source", "amount", "currency", "date"])
    private static let accountKeys = KeyTable(["status", "changed_at"])

    // MARK: Values

    /// A value that is not a container: string, number, `true`, `false` or `null`.
    @inline(__always)
    private mutating func scalar() -> Value? {
        guard i < bytes.count else { return nil }
        switch bytes[i] {
        case UInt8(ascii: "\""): return string()
        case UInt8(ascii: "t"): return literal("true") ? .bool(true) : nil
        case UInt8(ascii: "f"): return literal("false") ? .bool(false) : nil
        case UInt8(ascii: "n"): return literal("null") ? .null : nil
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return number()
        default: return nil
        }
    }

    @inline(__always)
    private mutating func literal(_ text: StaticString) -> Bool {
        let n = text.utf8CodeUnitCount
        guard i + n <= bytes.count else { return false }
        for k in 0..<n where bytes[i + k] != text.utf8Start[k] { return false }
        i += n
        return true
    }

    /// A string at `i` (the opening quote).
    private mutating func string() -> Value? {
        i += 1
        let start = i
        var ascii = true
        while i < bytes.count {
            let c = bytes[i]
            if c == UInt8(ascii: "\"") {
                let slice = UnsafeRawBufferPointer(rebasing: bytes[start..<i])
                i += 1
                if ascii { return .string(slice, isASCII: true) }
                return UTF8Check.isValid(slice, from: 0) ? .string(slice, isASCII: false) : nil
            }
            if c == UInt8(ascii: "\\") { return escapedString(from: start) }
            if c < 0x20 { return nil }
            if c >= 0x80 { ascii = false }
            i += 1
        }
        return nil
    }

    /// The rest of a string with an escape at `i`, unescaped into the scratch buffer as
    /// `JSONParser` unescapes it.
    private mutating func escapedString(from start: Int) -> Value? {
        if scratch == nil { scratch = .allocate(byteCount: bytes.count, alignment: 1) }
        let out = scratch!
        let begin = scratchUsed
        var o = begin
        for k in start..<i {
            out[o] = bytes[k]
            o += 1
        }
        while i < bytes.count {
            let c = bytes[i]
            if c == UInt8(ascii: "\"") {
                i += 1
                scratchUsed = o
                return .string(validating: UnsafeRawBufferPointer(rebasing: out[begin..<o]))
            }
            if c < 0x20 { return nil }
            if c != UInt8(ascii: "\\") {
                out[o] = c
                o += 1
                i += 1
                continue
            }
            i += 1
            guard i < bytes.count else { return nil }
            let e = bytes[i]
            i += 1
            switch e {
            case UInt8(ascii: "\""): out[o] = 0x22
            case UInt8(ascii: "\\"): out[o] = 0x5C
            case UInt8(ascii: "/"): out[o] = 0x2F
            case UInt8(ascii: "b"): out[o] = 0x08
            case UInt8(ascii: "f"): out[o] = 0x0C
            case UInt8(ascii: "n"): out[o] = 0x0A
            case UInt8(ascii: "r"): out[o] = 0x0D
            case UInt8(ascii: "t"): out[o] = 0x09
            case UInt8(ascii: "u"):
                guard var scalar = hex4() else { return nil }
                if (0xD800..<0xDC00).contains(scalar) {
                    // A high surrogate must be followed by an escaped low surrogate.
                    guard i + 6 <= bytes.count, bytes[i] == UInt8(ascii: "\\"), bytes[i + 1] == UInt8(ascii: "u")
                    else { return nil }
                    i += 2
                    guard let low = hex4(), (0xDC00..<0xE000).contains(low) else { return nil }
                    scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                } else if (0xDC00..<0xE000).contains(scalar) {
                    return nil
                }
                guard let unicode = Unicode.Scalar(scalar) else { return nil }
                for unit in UTF8.encode(unicode)! {
                    out[o] = unit
                    o += 1
                }
                continue
            default:
                return nil
            }
            o += 1
        }
        return nil
    }

    @inline(__always)
    private mutating func hex4() -> UInt32? {
        guard i + 4 <= bytes.count else { return nil }
        var value: UInt32 = 0
        for _ in 0..<4 {
            let c = bytes[i]
            let digit: UInt32
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = UInt32(c - UInt8(ascii: "0"))
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = UInt32(c - UInt8(ascii: "a") + 10)
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = UInt32(c - UInt8(ascii: "A") + 10)
            default: return nil
            }
            value = value << 4 | digit
            i += 1
        }
        return value
    }

    @inline(__always)
    private func isDigit(_ k: Int) -> Bool {
        k < bytes.count && bytes[k] >= UInt8(ascii: "0") && bytes[k] <= UInt8(ascii: "9")
    }

    /// Exact powers of ten as doubles (10^22 is the last one a double holds exactly).
    private static let powersOfTen: [Double] = [
        1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19,
        1e20, 1e21, 1e22,
    ]

    /// A number, read in place: an integer that fits in `Int64` as `.int` (as `JSONParser`
    /// reads it, `-0` is 0); any other integer gives up (`JSONParser` keeps it as a big
    /// integer). A fraction or exponent is `.double`, the correctly rounded value: exact
    /// arithmetic when the significand has at most 19 digits, stays below 2^53 and the
    /// power of ten is at most 22 (one rounding of exact operands, Clinger's fast path),
    /// otherwise the same `Double(String)` that `JSONParser` calls.
    private mutating func number() -> Value? {
        let start = i
        let negative = bytes[i] == UInt8(ascii: "-")
        if negative { i += 1 }
        guard isDigit(i) else { return nil }
        var significand: UInt64 = 0
        var digits = 0  // significant digits in `significand` (leading zeros not counted)
        var overflow = false
        @inline(__always) func add(_ c: UInt8) {
            if digits == 0 && c == UInt8(ascii: "0") { return }
            if digits < 19 {
                significand = significand &* 10 &+ UInt64(c - UInt8(ascii: "0"))
                digits += 1
            } else {
                overflow = true
            }
        }
        if bytes[i] == UInt8(ascii: "0") {
            i += 1
        } else {
            while isDigit(i) {
                add(bytes[i])
                i += 1
            }
        }
        var isInteger = true
        var fractionDigits = 0
        if i < bytes.count && bytes[i] == UInt8(ascii: ".") {
            isInteger = false
            i += 1
            guard isDigit(i) else { return nil }
            while isDigit(i) {
                add(bytes[i])
                fractionDigits += 1
                i += 1
            }
        }
        var exponent = 0
        if i < bytes.count && (bytes[i] == UInt8(ascii: "e") || bytes[i] == UInt8(ascii: "E")) {
            isInteger = false
            i += 1
            var exponentNegative = false
            if i < bytes.count && (bytes[i] == UInt8(ascii: "+") || bytes[i] == UInt8(ascii: "-")) {
                exponentNegative = bytes[i] == UInt8(ascii: "-")
                i += 1
            }
            guard isDigit(i) else { return nil }
            while isDigit(i) {
                if exponent < 100_000 { exponent = exponent * 10 + Int(bytes[i] - UInt8(ascii: "0")) }
                i += 1
            }
            if exponentNegative { exponent = -exponent }
        }
        if isInteger {
            // At most 19 digits always fit in UInt64; Int64 takes up to 2^63 - 1 (2^63 when negative).
            guard !overflow else { return nil }
            if negative {
                guard significand <= UInt64(Int64.max) + 1 else { return nil }
                return .int(significand == 0 ? 0 : Int64(bitPattern: 0 &- significand))
            }
            guard significand <= UInt64(Int64.max) else { return nil }
            return .int(Int64(significand))
        }
        // The digits read as one integer (leading zeros add nothing), scaled by the exponent
        // less the digits that were after the point.
        let power = exponent - fractionDigits
        if !overflow && significand <= 1 << 53 && power >= -22 && power <= 22 {
            var d = Double(significand)
            if power >= 0 { d *= Self.powersOfTen[power] } else { d /= Self.powersOfTen[-power] }
            return .double(negative ? -d : d)
        }
        let text = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[start..<i]), as: UTF8.self)
        return .double(Double(text) ?? .nan)
    }
}

extension EventFields {
    /// Sets the top-level slot `n` (the order of `JSONEventScanner.eventKeys`).
    @inline(__always)
    mutating func setSlot(_ n: Int, _ value: Value) {
        switch n {
        case 0: kind = value
        case 1: source = value
        case 2: id = value
        case 3: version = value
        case 4: occurredAt = value
        case 5: deal = value
        case 6: spend = value
        default: account = value
        }
    }
}
