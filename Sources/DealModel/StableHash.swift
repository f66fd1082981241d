/// A fast, seeded 64-bit hash of bytes that is the same in every process and on every run.
///
/// Swift's `Hasher` is randomly seeded per process, so it cannot decide which shard owns
/// a series or tell two events apart across a restart. This is a small multiply-rotate
/// hash in the style of wyhash/xxhash; it is not cryptographic.
public enum StableHash {
    @inline(__always)
    public static func mix(_ a: UInt64, _ b: UInt64) -> UInt64 {
        let product = a.multipliedFullWidth(by: b)
        return product.high ^ product.low
    }

    public static func hash64<C: Collection>(_ bytes: C, seed: UInt64 = 0) -> UInt64 where C.Element == UInt8 {
        if let h = bytes.withContiguousStorageIfAvailable({ hash64(UnsafeRawBufferPointer($0), seed: seed) }) {
            return h
        }
        return Array(bytes).withUnsafeBytes { hash64($0, seed: seed) }
    }

    /// The hash of a string's UTF-8 bytes (without copying native strings).
    public static func hash64(_ string: String, seed: UInt64 = 0) -> UInt64 {
        var s = string
        return s.withUTF8 { hash64(UnsafeRawBufferPointer($0), seed: seed) }
    }

    /// The hash of raw bytes, eight at a time.
    public static func hash64(_ bytes: UnsafeRawBufferPointer, seed: UInt64 = 0) -> UInt64 {
        var h: UInt64 = seed ^ 0x9E37_79B9_7F4A_7C15
        let count = bytes.count
        var i = 0
        while i + 8 <= count {
            let word = UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: i, as: UInt64.self))
            h = mix(h ^ word, 0xA076_1D64_78BD_642F)
            i += 8
        }
        var tail: UInt64 = 0
        var shift: UInt64 = 0
        while i < count {
            tail |= UInt64(bytes[i]) << shift
            shift += 8
            i += 1
        }
        h = mix(h ^ tail ^ (UInt64(count) << 56), 0xE703_7ED1_A0B4_28DB)
        return mix(h, 0x8EBC_6AF0_9C88_C6E3) ^ UInt64(count)
    }
}

/// A 128-bit content digest.
public struct Digest128: Hashable, Sendable {
    public var high: UInt64
    public var low: UInt64
    public init(high: UInt64, low: UInt64) {
        self.high = high
        self.low = low
    }
}
