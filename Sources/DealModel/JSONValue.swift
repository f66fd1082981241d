/// A parsed JSON value that keeps what validation needs to know and Foundation blurs:
/// integers apart from floats (`5` is a valid version, `5.0` is not), booleans apart
/// from numbers, and integers too large for `Int64`.
public enum JSONValue: Sendable, Equatable {
    case null
    case bool(Bool)
    /// An integer literal that fits in `Int64`.
    case int(Int64)
    /// An integer literal outside `Int64`; kept as its digits and its nearest double.
    case bigInt(String, Double)
    /// A literal with a fraction or an exponent.
    case double(Double)
    case string(String)
    case array([JSONValue])
    /// Members in document order; the parser refuses an object with a repeated key.
    case object([(String, JSONValue)])

    public static func == (lhs: JSONValue, rhs: JSONValue) -> Bool {
        switch (lhs, rhs) {
        case (.null, .null): return true
        case let (.bool(a), .bool(b)): return a == b
        case let (.string(a), .string(b)): return a == b
        case let (.array(a), .array(b)): return a == b
        case let (.object(a), .object(b)):
            guard a.count == b.count else { return false }
            for (key, value) in a {
                guard let other = b.first(where: { $0.0 == key }) else { return false }
                if other.1 != value { return false }
            }
            return true
        default:
            // Numbers compare by value across representations, as JSON values do in Python.
            if let a = lhs.numberValue, let b = rhs.numberValue { return a == b }
            return false
        }
    }

    /// The member `key` of an object, `nil` when absent or when this is not an object.
    public subscript(key: String) -> JSONValue? {
        guard case .object(let members) = self else { return nil }
        return members.last(where: { $0.0 == key })?.1
    }

    public var stringValue: String? {
        if case .string(let s) = self { return s }
        return nil
    }

    /// The value of a number of any representation (booleans are not numbers).
    public var numberValue: Double? {
        switch self {
        case .int(let i): return Double(i)
        case .bigInt(_, let d): return d
        case .double(let d): return d
        default: return nil
        }
    }

    /// A short name of the JSON type, for error messages.
    public var typeName: String {
        switch self {
        case .null: "null"
        case .bool: "a boolean"
        case .int, .bigInt, .double: "a number"
        case .string: "a string"
        case .array: "an array"
        case .object: "an object"
        }
    }
}

/// Why a byte string is not a JSON document.
public struct JSONParseError: Error, Sendable, Equatable, CustomStringConvertible {
    public var offset: Int
    public var reason: String
    /// The bytes are not UTF-8 (as opposed to not JSON).
    public var isInvalidUTF8 = false
    public var description: String { "\(reason) at byte \(offset)" }
}

/// A strict RFC 8259 parser over UTF-8 bytes.
///
/// Strict where it matters for an ingest path: invalid UTF-8, `NaN`/`Infinity`,
/// trailing garbage, an object with a repeated key and nesting deeper than `maximumDepth`
/// are errors, never guesses.
public struct JSONParser {
    public static let defaultMaximumDepth = 64

    private let bytes: UnsafeRawBufferPointer
    private var position = 0
    private let maximumDepth: Int

    private init(bytes: UnsafeRawBufferPointer, maximumDepth: Int) {
        self.bytes = bytes
        self.maximumDepth = maximumDepth
    }

    /// Parses one JSON document (surrounding whitespace allowed).
    public static func parse(
        _ data: [UInt8],
        maximumDepth: Int = defaultMaximumDepth
    ) throws(JSONParseError) -> JSONValue {
        let result: Result<JSONValue, JSONParseError> = data.withUnsafeBytes { raw in
            var parser = JSONParser(bytes: raw, maximumDepth: maximumDepth)
            do throws(JSONParseError) {
                parser.skipWhitespace()
                let value = try parser.parseValue(depth: 0)
                parser.skipWhitespace()
                if parser.position != raw.count { throw parser.error("unexpected data after the JSON value") }
                return .success(value)
            } catch {
                return .failure(error)
            }
        }
        return try result.get()
    }

    private func error(_ reason: String) -> JSONParseError {
        JSONParseError(offset: position, reason: reason)
    }

    private mutating func skipWhitespace() {
        while position < bytes.count {
            switch bytes[position] {
            case 0x20, 0x09, 0x0A, 0x0D: position += 1
            default: return
            }
        }
    }

    private mutating func parseValue(depth: Int) throws(JSONParseError) -> JSONValue {
        guard position < bytes.count else { throw error("unexpected end of input") }
        switch bytes[position] {
        case UInt8(ascii: "{"): return try parseObject(depth: depth + 1)
        case UInt8(ascii: "["): return try parseArray(depth: depth + 1)
        case UInt8(ascii: "\""): return .string(try parseString())
        case UInt8(ascii: "t"):
            try expectLiteral("true")
            return .bool(true)
        case UInt8(ascii: "f"):
            try expectLiteral("false")
            return .bool(false)
        case UInt8(ascii: "n"):
            try expectLiteral("null")
            return .null
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return try parseNumber()
        default: throw error("unexpected character")
        }
    }

    private mutating func expectLiteral(_ literal: StaticString) throws(JSONParseError) {
        let count = literal.utf8CodeUnitCount
        guard position + count <= bytes.count else { throw error("unexpected end of input") }
        let base = literal.utf8Start
        for i in 0..<count where bytes[position + i] != base[i] {
            throw error("invalid literal")
        }
        position += count
    }

    private mutating func parseObject(depth: Int) throws(JSONParseError) -> JSONValue {
        if depth > maximumDepth { throw error("nesting deeper than \(maximumDepth)") }
        position += 1
        var members: [(String, JSONValue)] = []
        // Keys seen, once an object is large enough that scanning `members` would make a
        // hostile object with many keys cost quadratic time.
        var keys: Set<String>?
        skipWhitespace()
        if position < bytes.count && bytes[position] == UInt8(ascii: "}") {
            position += 1
            return .object(members)
        }
        while true {
            skipWhitespace()
            guard position < bytes.count, bytes[position] == UInt8(ascii: "\"") else {
                throw error("expected a string key")
            }
            let keyOffset = position
            let key = try parseString()
            // Two parsers that disagree on a repeated key (first wins, last wins) are a hole
            // between what was signed or checked and what is applied: refuse it.
            if members.count == 16 { keys = Set(members.map(\.0)) }
            let repeated: Bool
            if keys != nil {
                repeated = !keys!.insert(key).inserted
            } else {
                repeated = members.contains(where: { $0.0 == key })
            }
            if repeated {
                throw JSONParseError(offset: keyOffset, reason: "duplicate key \(JSONParser.quoted(key))")
            }
            skipWhitespace()
            guard position < bytes.count, bytes[position] == UInt8(ascii: ":") else { throw error("expected ':'") }
            position += 1
            skipWhitespace()
            members.append((key, try parseValue(depth: depth)))
            skipWhitespace()
            guard position < bytes.count else { throw error("unexpected end of input") }
            if bytes[position] == UInt8(ascii: ",") {
                position += 1
            } else if bytes[position] == UInt8(ascii: "}") {
                position += 1
                return .object(members)
            } else {
                throw error("expected ',' or '}'")
            }
        }
    }

    private mutating func parseArray(depth: Int) throws(JSONParseError) -> JSONValue {
        if depth > maximumDepth { throw error("nesting deeper than \(maximumDepth)") }
        position += 1
        var elements: [JSONValue] = []
        skipWhitespace()
        if position < bytes.count && bytes[position] == UInt8(ascii: "]") {
            position += 1
            return .array(elements)
        }
        while true {
            skipWhitespace()
            elements.append(try parseValue(depth: depth))
            skipWhitespace()
            guard position < bytes.count else { throw error("unexpected end of input") }
            if bytes[position] == UInt8(ascii: ",") {
                position += 1
            } else if bytes[position] == UInt8(ascii: "]") {
                position += 1
                return .array(elements)
            } else {
                throw error("expected ',' or ']'")
            }
        }
    }

    private mutating func parseHex4() throws(JSONParseError) -> UInt32 {
        guard position + 4 <= bytes.count else { throw error("truncated \\u escape") }
        var value: UInt32 = 0
        for _ in 0..<4 {
            let c = bytes[position]
            let digit: UInt32
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = UInt32(c - UInt8(ascii: "0"))
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = UInt32(c - UInt8(ascii: "a") + 10)
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = UInt32(c - UInt8(ascii: "A") + 10)
            default: throw error("invalid \\u escape")
            }
            value = value << 4 | digit
            position += 1
        }
        return value
    }

    private mutating func parseString() throws(JSONParseError) -> String {
        position += 1  // opening quote
        let start = position
        var isASCII = true
        // Fast path: no escapes.
        while position < bytes.count {
            let c = bytes[position]
            if c >= 0x80 { isASCII = false }
            if c == UInt8(ascii: "\"") {
                let slice = UnsafeRawBufferPointer(rebasing: bytes[start..<position])
                position += 1
                if isASCII { return String(decoding: slice, as: UTF8.self) }
                guard let s = String(validating: slice, as: UTF8.self) else {
                    throw JSONParseError(offset: start, reason: "string is not valid UTF-8", isInvalidUTF8: true)
                }
                return s
            }
            if c == UInt8(ascii: "\\") { break }
            if c < 0x20 { throw error("control character in string") }
            position += 1
        }
        var buffer: [UInt8] = Array(UnsafeRawBufferPointer(rebasing: bytes[start..<position]))
        while position < bytes.count {
            let c = bytes[position]
            if c == UInt8(ascii: "\"") {
                position += 1
                guard let s = String(validating: buffer, as: UTF8.self) else {
                    throw JSONParseError(offset: start, reason: "string is not valid UTF-8", isInvalidUTF8: true)
                }
                return s
            }
            if c < 0x20 { throw error("control character in string") }
            if c != UInt8(ascii: "\\") {
                buffer.append(c)
                position += 1
                continue
            }
            position += 1
            guard position < bytes.count else { break }
            let e = bytes[position]
            position += 1
            switch e {
            case UInt8(ascii: "\""): buffer.append(0x22)
            case UInt8(ascii: "\\"): buffer.append(0x5C)
            case UInt8(ascii: "/"): buffer.append(0x2F)
            case UInt8(ascii: "b"): buffer.append(0x08)
            case UInt8(ascii: "f"): buffer.append(0x0C)
            case UInt8(ascii: "n"): buffer.append(0x0A)
            case UInt8(ascii: "r"): buffer.append(0x0D)
            case UInt8(ascii: "t"): buffer.append(0x09)
            case UInt8(ascii: "u"):
                var scalar = try parseHex4()
                if (0xD800..<0xDC00).contains(scalar) {
                    // A high surrogate must be followed by an escaped low surrogate.
                    guard position + 6 <= bytes.count, bytes[position] == UInt8(ascii: "\\"),
                        bytes[position + 1] == UInt8(ascii: "u")
                    else { throw error("unpaired surrogate in \\u escape") }
                    position += 2
                    let low = try parseHex4()
                    guard (0xDC00..<0xE000).contains(low) else { throw error("unpaired surrogate in \\u escape") }
                    scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                } else if (0xDC00..<0xE000).contains(scalar) {
                    throw error("unpaired surrogate in \\u escape")
                }
                guard let unicode = Unicode.Scalar(scalar) else { throw error("invalid \\u escape") }
                buffer.append(contentsOf: Array(String(Character(unicode)).utf8))
            default:
                throw error("invalid escape")
            }
        }
        throw error("unterminated string")
    }

    private mutating func parseNumber() throws(JSONParseError) -> JSONValue {
        let start = position
        var isInteger = true
        if bytes[position] == UInt8(ascii: "-") { position += 1 }
        guard position < bytes.count, isDigit(bytes[position]) else { throw error("invalid number") }
        if bytes[position] == UInt8(ascii: "0") {
            position += 1
        } else {
            while position < bytes.count && isDigit(bytes[position]) { position += 1 }
        }
        if position < bytes.count && bytes[position] == UInt8(ascii: ".") {
            isInteger = false
            position += 1
            guard position < bytes.count, isDigit(bytes[position]) else { throw error("invalid number") }
            while position < bytes.count && isDigit(bytes[position]) { position += 1 }
        }
        if position < bytes.count && (bytes[position] == UInt8(ascii: "e") || bytes[position] == UInt8(ascii: "E")) {
            isInteger = false
            position += 1
            if position < bytes.count && (bytes[position] == UInt8(ascii: "+") || bytes[position] == UInt8(ascii: "-"))
            {
                position += 1
            }
            guard position < bytes.count, isDigit(bytes[position]) else { throw error("invalid number") }
            while position < bytes.count && isDigit(bytes[position]) { position += 1 }
        }
        let text = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[start..<position]), as: UTF8.self)
        if isInteger {
            if let i = Int64(text) { return .int(i) }
            return .bigInt(text, Double(text) ?? .infinity)
        }
        // Double(text) gives ±infinity for out-of-range exponents: caught as "not finite".
        return .double(Double(text) ?? .nan)
    }

    /// A key as JSON text for an error message, cut at 64 bytes.
    static func quoted(_ key: String) -> String {
        var out: [UInt8] = []
        JSONWriter.appendString(String(decoding: key.utf8.prefix(64), as: UTF8.self), to: &out)
        return String(decoding: out, as: UTF8.self)
    }

    private func isDigit(_ c: UInt8) -> Bool { c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9") }
}

extension JSONValue {
    /// A 128-bit digest of the value as a JSON value: object member order, whitespace,
    /// escapes and the spelling of numbers (`1`, `1.0`, `1e0`) do not change it. Equal
    /// digests mean equal events; used to tell a duplicate without keeping the event.
    public func digest() -> Digest128 {
        Digest128(high: hash(seed: JSONHash.highSeed), low: hash(seed: JSONHash.lowSeed))
    }

    private func hash(seed: UInt64) -> UInt64 {
        switch self {
        case .null: return JSONHash.null(seed: seed)
        case .bool(let b): return JSONHash.bool(b, seed: seed)
        case .int(let i): return JSONHash.int(i, seed: seed)
        case .double(let d): return JSONHash.double(d, seed: seed)
        case .bigInt(let digits, let d):
            // By value: every number that is exactly a double hashes as that double.
            if d.isFinite, let i = Int128(exactly: d), String(i) == digits { return JSONHash.double(d, seed: seed) }
            return StableHash.hash64(digits, seed: seed ^ 5)
        case .string(let s):
            var s = s
            return s.withUTF8 { JSONHash.string(UnsafeRawBufferPointer($0), seed: seed) }
        case .array(let elements):
            var h = seed ^ 7
            for e in elements { h = StableHash.mix(h ^ e.hash(seed: seed), 0x8EBC_6AF0_9C88_C6E3) }
            return StableHash.mix(h ^ UInt64(elements.count), 0xA076_1D64_78BD_642F)
        case .object(let members):
            // A sum of per-member hashes: independent of member order.
            var sum: UInt64 = 0
            for (key, value) in members {
                var key = key
                let k = key.withUTF8 { JSONHash.key(UnsafeRawBufferPointer($0), objectSeed: seed) }
                sum &+= JSONHash.member(key: k, value: value.hash(seed: seed &+ k))
            }
            return JSONHash.object(sum: sum, count: members.count, seed: seed)
        }
    }
}

/// The pieces of `JSONValue.digest()`, one per kind of JSON value.
///
/// Why it exists: the ingest fast path (`EventFields`, `EventDecoder.decodeDirect`) reads an
/// event without building a `JSONValue`, and its digest must be the digest of that value,
/// bit for bit, or a duplicate would count as a new event. Both compute it with these
/// functions. A digest has two halves (`highSeed`, `lowSeed`); an object member's value
/// is hashed with `objectSeed &+ key(…)` as its seed, so nested objects hash differently
/// under different keys.
public enum JSONHash {
    /// The seed of a digest's high half at the top level.
    public static let highSeed: UInt64 = 0x1234_5678
    /// The seed of a digest's low half at the top level.
    public static let lowSeed: UInt64 = 0xDEAD_BEEF_CAFE

    @inline(__always)
    public static func null(seed: UInt64) -> UInt64 { StableHash.mix(seed ^ 1, 0xA076_1D64_78BD_642F) }

    @inline(__always)
    public static func bool(_ b: Bool, seed: UInt64) -> UInt64 {
        StableHash.mix(seed ^ (b ? 2 : 3), 0xA076_1D64_78BD_642F)
    }

    /// A number that is exactly the double `d` (`1`, `1.0` and `1e0` alike).
    @inline(__always)
    public static func double(_ d: Double, seed: UInt64) -> UInt64 {
        StableHash.mix(seed ^ 4 ^ (d == 0 ? 0 : d.bitPattern), 0xE703_7ED1_A0B4_28DB)
    }

    /// An integer literal that fits in `Int64`: as its double when that is exact, else by its digits.
    @inline(__always)
    public static func int(_ i: Int64, seed: UInt64) -> UInt64 {
        if let d = Double(exactly: i) { return double(d, seed: seed) }
        return StableHash.hash64(String(i), seed: seed ^ 5)
    }

    /// A string, by its UTF-8 bytes (after unescaping).
    @inline(__always)
    public static func string(_ utf8: UnsafeRawBufferPointer, seed: UInt64) -> UInt64 {
        StableHash.hash64(utf8, seed: seed ^ 6)
    }

    /// The hash of a member's key (UTF-8, unescaped) in an object hashed with `objectSeed`;
    /// the member's value is then hashed with the seed `objectSeed &+ key`.
    @inline(__always)
    public static func key(_ utf8: UnsafeRawBufferPointer, objectSeed: UInt64) -> UInt64 {
        StableHash.hash64(utf8, seed: objectSeed ^ 8)
    }

    /// One member's share of its object's sum.
    @inline(__always)
    public static func member(key: UInt64, value: UInt64) -> UInt64 {
        StableHash.mix(key ^ value, 0xE703_7ED1_A0B4_28DB)
    }

    /// An object from the (wrapping) sum of its members' shares and their number.
    @inline(__always)
    public static func object(sum: UInt64, count: Int, seed: UInt64) -> UInt64 {
        StableHash.mix(sum ^ seed ^ 9 ^ (UInt64(count) << 32), 0x8EBC_6AF0_9C88_C6E3)
    }
}

/// Writes JSON text: strings escaped per RFC 8259, numbers as JSON allows.
public enum JSONWriter {
    public static func appendString(_ s: String, to out: inout [UInt8]) {
        appendString(utf8: s.utf8, to: &out)
    }

    /// `appendString` of a string's UTF-8 bytes: the one JSON string escaping, for
    /// callers that hold bytes (a topic's labels are written straight from them).
    @inlinable
    public static func appendString<Bytes: Sequence<UInt8>>(utf8 bytes: Bytes, to out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        for byte in bytes {
            switch byte {
            case UInt8(ascii: "\""), UInt8(ascii: "\\"):
                out.append(0x5C)
                out.append(byte)
            case 0x0A:
                out.append(0x5C)
                out.append(UInt8(ascii: "n"))
            case 0x0D:
                out.append(0x5C)
                out.append(UInt8(ascii: "r"))
            case 0x09:
                out.append(0x5C)
                out.append(UInt8(ascii: "t"))
            case 0..<0x20:
                let hex: StaticString = "0123456789abcdef"
                out.append(0x5C)
                out.append(UInt8(ascii: "u"))
                out.append(UInt8(ascii: "0"))
                out.append(UInt8(ascii: "0"))
                out.append(hex.utf8Start[Int(byte >> 4)])
                out.append(hex.utf8Start[Int(byte & 0xF)])
            default: out.append(byte)
            }
        }
        out.append(UInt8(ascii: "\""))
    }

    /// A double as JSON: the shortest text that round-trips; `null` when not finite.
    public static func number(_ d: Double) -> String {
        var out: [UInt8] = []
        appendNumber(d, to: &out)
        return String(decoding: out, as: UTF8.self)
    }

    /// Appends `number(d)`: integral values (most sums and counts kept as doubles) digit by
    /// digit, the others as `Double.description` writes them, taken from the standard
    /// library's own digit buffer (`ByteAppender`), so no `String` is made per number.
    public static func appendNumber(_ d: Double, to out: inout [UInt8]) {
        guard d.isFinite else {
            out.append(contentsOf: [UInt8(ascii: "n"), UInt8(ascii: "u"), UInt8(ascii: "l"), UInt8(ascii: "l")])
            return
        }
        guard d == d.rounded(), abs(d) < 1e15 else {
            withUnsafeMutablePointer(to: &out) { pointer in
                var appender = ByteAppender(out: pointer)
                d.write(to: &appender)
            }
            return
        }
        let n = Int64(d)
        if n < 0 { out.append(UInt8(ascii: "-")) }
        appendDecimal(n.magnitude, to: &out)
        out.append(UInt8(ascii: "."))
        out.append(UInt8(ascii: "0"))
    }

    /// Appends `v` in decimal ASCII (no `String` in between).
    public static func appendDecimal(_ v: UInt64, to out: inout [UInt8]) {
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 20) { buffer in
            var i = 20
            var rest = v
            repeat {
                i -= 1
                buffer[i] = UInt8(ascii: "0") &+ UInt8(truncatingIfNeeded: rest % 10)
                rest /= 10
            } while rest > 0
            out.append(contentsOf: UnsafeBufferPointer(rebasing: buffer[i...]))
        }
    }

    /// The stream `Double.write(to:)` writes into: the standard library hands its digits
    /// to `_writeASCII` as bytes (the same text as `description`), appended here as they are.
    private struct ByteAppender: TextOutputStream {
        let out: UnsafeMutablePointer<[UInt8]>
        mutating func write(_ string: String) { out.pointee.append(contentsOf: string.utf8) }
        mutating func _writeASCII(_ buffer: UnsafeBufferPointer<UInt8>) { out.pointee.append(contentsOf: buffer) }
    }

    /// An optional double as JSON (`null` when absent).
    public static func number(_ d: Double?) -> String {
        guard let d else { return "null" }
        return number(d)
    }

    /// Any JSON value as text, object members in their order.
    public static func append(_ value: JSONValue, to out: inout [UInt8]) {
        switch value {
        case .null: out += Array("null".utf8)
        case .bool(let b): out += Array((b ? "true" : "false").utf8)
        case .int(let i): out += Array(String(i).utf8)
        case .bigInt(let digits, _): out += Array(digits.utf8)
        case .double(let d): appendNumber(d, to: &out)
        case .string(let s): appendString(s, to: &out)
        case .array(let items):
            out.append(UInt8(ascii: "["))
            for (i, item) in items.enumerated() {
                if i > 0 { out.append(UInt8(ascii: ",")) }
                append(item, to: &out)
            }
            out.append(UInt8(ascii: "]"))
        case .object(let members):
            out.append(UInt8(ascii: "{"))
            for (i, (key, item)) in members.enumerated() {
                if i > 0 { out.append(UInt8(ascii: ",")) }
                appendString(key, to: &out)
                out.append(UInt8(ascii: ":"))
                append(item, to: &out)
            }
            out.append(UInt8(ascii: "}"))
        }
    }
}
