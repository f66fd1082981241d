#if canImport(Glibc)
import Glibc
#endif

/// Appends little-endian binary fields to a byte buffer.
///
/// Used where JSON would be wasted work: the daemon↔worker link (JSON is decoded once, at
/// ingest, and never again downstream) and the daemon's checkpoints.
public struct BinaryWriter {
    public private(set) var bytes: [UInt8] = []

    public init(capacity: Int = 256) { bytes.reserveCapacity(capacity) }

    public mutating func u8(_ v: UInt8) { bytes.append(v) }
    public mutating func u16(_ v: UInt16) { withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) } }
    public mutating func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) } }
    public mutating func u64(_ v: UInt64) { withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) } }
    public mutating func i128(_ v: Int128) {
        u64(UInt64(truncatingIfNeeded: v))
        u64(UInt64(truncatingIfNeeded: v >> 64))
    }
    public mutating func f64(_ v: Double) { u64(v.bitPattern) }
    public mutating func bytes(_ b: [UInt8]) {
        u32(UInt32(b.count))
        bytes.append(contentsOf: b)
    }
    public mutating func bytes(_ b: ArraySlice<UInt8>) {
        u32(UInt32(b.count))
        bytes.append(contentsOf: b)
    }
    public mutating func string(_ s: String) {
        u32(UInt32(s.utf8.count))
        bytes.append(contentsOf: s.utf8)
    }
}

/// A truncated or malformed binary message, with what was being read.
public struct BinaryDecodingError: Error, Sendable, CustomStringConvertible {
    public var reason: String
    public init(_ reason: String) { self.reason = reason }
    public var description: String { reason }
}

/// Reads what `BinaryWriter` wrote, failing (never trapping) on short input.
public struct BinaryReader {
    private let bytes: [UInt8]
    public private(set) var offset = 0

    public init(_ bytes: [UInt8]) { self.bytes = bytes }

    public var isAtEnd: Bool { offset == bytes.count }

    private mutating func take(_ n: Int, _ what: String) throws(BinaryDecodingError) -> Int {
        guard n >= 0, offset + n <= bytes.count else { throw BinaryDecodingError("truncated message reading \(what)") }
        defer { offset += n }
        return offset
    }

    public mutating func u8(_ what: String = "u8") throws(BinaryDecodingError) -> UInt8 { bytes[try take(1, what)] }
    public mutating func u16(_ what: String = "u16") throws(BinaryDecodingError) -> UInt16 {
        let o = try take(2, what)
        return UInt16(bytes[o]) | UInt16(bytes[o + 1]) << 8
    }
    public mutating func u32(_ what: String = "u32") throws(BinaryDecodingError) -> UInt32 {
        let o = try take(4, what)
        var v: UInt32 = 0
        for i in 0..<4 { v |= UInt32(bytes[o + i]) << (8 * UInt32(i)) }
        return v
    }
    public mutating func u64(_ what: String = "u64") throws(BinaryDecodingError) -> UInt64 {
        let o = try take(8, what)
        var v: UInt64 = 0
        for i in 0..<8 { v |= UInt64(bytes[o + i]) << (8 * UInt64(i)) }
        return v
    }
    public mutating func i128(_ what: String = "i128") throws(BinaryDecodingError) -> Int128 {
        let low = try u64(what)
        let high = try u64(what)
        return Int128(Int64(bitPattern: high)) << 64 | Int128(low)
    }
    public mutating func f64(_ what: String = "f64") throws(BinaryDecodingError) -> Double {
        Double(bitPattern: try u64(what))
    }
    public mutating func bytes(_ what: String = "bytes") throws(BinaryDecodingError) -> [UInt8] {
        let n = Int(try u32(what))
        let o = try take(n, what)
        return Array(bytes[o..<o + n])
    }
    public mutating func string(_ what: String = "string") throws(BinaryDecodingError) -> String {
        try string(count: Int(try u32(what)), what)
    }
    /// `count` bytes of UTF-8 (a string whose length was written apart).
    ///
    /// Decoded from the buffer directly (`String(validating:)` over a slice runs
    /// unspecialized, looking up generic metadata per call) and validated by comparing
    /// the string's bytes with the input: repairing changes invalid UTF-8, so equal bytes
    /// mean the input was valid.
    public mutating func string(count n: Int, _ what: String = "string") throws(BinaryDecodingError) -> String {
        let o = try take(n, what)
        let decoded: String? = bytes.withUnsafeBufferPointer { buffer in
            let input = UnsafeBufferPointer(rebasing: buffer[o..<o + n])
            var s = String(decoding: input, as: UTF8.self)
            let same = s.withUTF8 { $0.count == n && (n == 0 || memcmp($0.baseAddress!, input.baseAddress!, n) == 0) }
            return same ? s : nil
        }
        guard let decoded else { throw BinaryDecodingError("\(what) is not UTF-8") }
        return decoded
    }
}
