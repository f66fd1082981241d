/// Checks that bytes are one well-formed JSON object (RFC 8259), without building values.
///
/// Why it exists: the daemon checks every series payload a worker reports before it
/// stamps and publishes it; parsing each into a `JSONValue` (allocating strings, arrays
/// and member lists) cost about as much as everything else the loop does with a result.
/// This walks the bytes once and allocates nothing.
public enum JSONSyntax {
    /// Whether `bytes` are exactly one JSON object (surrounding whitespace allowed), with
    /// valid UTF-8 in strings and nesting at most `maximumDepth` deep.
    public static func isObject(_ bytes: [UInt8], maximumDepth: Int = 32) -> Bool {
        bytes.withUnsafeBufferPointer { buffer in
            var scanner = Scanner(bytes: buffer, maximumDepth: maximumDepth)
            scanner.skipWhitespace()
            guard scanner.peek == UInt8(ascii: "{"), scanner.value(depth: 0) else { return false }
            scanner.skipWhitespace()
            return scanner.atEnd
        }
    }

    private struct Scanner {
        let bytes: UnsafeBufferPointer<UInt8>
        let maximumDepth: Int
        var i = 0

        init(bytes: UnsafeBufferPointer<UInt8>, maximumDepth: Int) {
            self.bytes = bytes
            self.maximumDepth = maximumDepth
        }

        var atEnd: Bool { i >= bytes.count }
        var peek: UInt8? { i < bytes.count ? bytes[i] : nil }

        mutating func skipWhitespace() {
            while let c = peek, c == 0x20 || c == 0x0A || c == 0x0D || c == 0x09 { i += 1 }
        }

        mutating func literal(_ text: StaticString) -> Bool {
            let n = text.utf8CodeUnitCount
            guard i + n <= bytes.count else { return false }
            for k in 0..<n where bytes[i + k] != text.utf8Start[k] { return false }
            i += n
            return true
        }

        mutating func value(depth: Int) -> Bool {
            guard depth <= maximumDepth, let c = peek else { return false }
            switch c {
            case UInt8(ascii: "{"):
                i += 1
                skipWhitespace()
                if peek == UInt8(ascii: "}") {
                    i += 1
                    return true
                }
                while true {
                    skipWhitespace()
                    guard peek == UInt8(ascii: "\""), string() else { return false }
                    skipWhitespace()
                    guard peek == UInt8(ascii: ":") else { return false }
                    i += 1
                    skipWhitespace()
                    guard value(depth: depth + 1) else { return false }
                    skipWhitespace()
                    guard let next = peek else { return false }
                    i += 1
                    if next == UInt8(ascii: "}") { return true }
                    guard next == UInt8(ascii: ",") else { return false }
                }
            case UInt8(ascii: "["):
                i += 1
                skipWhitespace()
                if peek == UInt8(ascii: "]") {
                    i += 1
                    return true
                }
                while true {
                    skipWhitespace()
                    guard value(depth: depth + 1) else { return false }
                    skipWhitespace()
                    guard let next = peek else { return false }
                    i += 1
                    if next == UInt8(ascii: "]") { return true }
                    guard next == UInt8(ascii: ",") else { return false }
                }
            case UInt8(ascii: "\""): return string()
            case UInt8(ascii: "t"): return literal("true")
            case UInt8(ascii: "f"): return literal("false")
            case UInt8(ascii: "n"): return literal("null")
            default: return number()
            }
        }

        /// A string at `i` (which holds the opening quote), escapes and UTF-8 checked.
        mutating func string() -> Bool {
            i += 1
            while let c = peek {
                switch c {
                case UInt8(ascii: "\""):
                    i += 1
                    return true
                case UInt8(ascii: "\\"):
                    i += 1
                    guard let e = peek else { return false }
                    i += 1
                    switch e {
                    case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"), UInt8(ascii: "b"),
                        UInt8(ascii: "f"),
                        UInt8(ascii: "n"), UInt8(ascii: "r"), UInt8(ascii: "t"):
                        continue
                    case UInt8(ascii: "u"):
                        guard i + 4 <= bytes.count, (0..<4).allSatisfy({ isHex(bytes[i + $0]) }) else { return false }
                        i += 4
                    default: return false
                    }
                case 0..<0x20: return false
                case 0..<0x80: i += 1
                default: guard utf8Sequence() else { return false }
                }
            }
            return false
        }

        /// One multi-byte UTF-8 sequence at `i` (no overlong forms, no surrogates).
        mutating func utf8Sequence() -> Bool {
            let lead = bytes[i]
            let (length, low, high): (Int, UInt8, UInt8)
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
            guard i + length <= bytes.count, (low...high).contains(bytes[i + 1]) else { return false }
            for k in 2..<max(2, length) where !(0x80...0xBF).contains(bytes[i + k]) { return false }
            i += length
            return true
        }

        func isHex(_ c: UInt8) -> Bool {
            (0x30...0x39).contains(c) || (0x41...0x46).contains(c) || (0x61...0x66).contains(c)
        }

        /// A number: -? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?
        mutating func number() -> Bool {
            func digits() -> Int {
                var n = 0
                while let c = peek, (0x30...0x39).contains(c) {
                    i += 1
                    n += 1
                }
                return n
            }
            if peek == UInt8(ascii: "-") { i += 1 }
            guard let first = peek, (0x30...0x39).contains(first) else { return false }
            if first == UInt8(ascii: "0") { i += 1 } else { _ = digits() }
            if peek == UInt8(ascii: ".") {
                i += 1
                guard digits() > 0 else { return false }
            }
            if peek == UInt8(ascii: "e") || peek == UInt8(ascii: "E") {
                i += 1
                if peek == UInt8(ascii: "+") || peek == UInt8(ascii: "-") { i += 1 }
                guard digits() > 0 else { return false }
            }
            return true
        }
    }
}
