/// A fast, seeded 64-bit hash of bytes that is the same in every process and on every run.
///
/// Swift's `Hasher` is randomly seeded per process, so it cannot decide which shard owns
/// a series or tell two events apart across a restart. This is a small multiply-rotate
/// hash in the style of wyhash/xxhash; it is not cryptographic.
public enum StableHash {
    @inline(__always)
    static func mix(_ a: UInt64, _ b: UInt64) -> UInt64 {
        let product = a.multipliedFullWidth(by: b)
        return product.high ^ product.low
    }

    public static func hash64<C: Collection>(_ bytes: C, seed: UInt64 = 0) -> UInt64 where C.Element == UInt8 {
        var h: UInt64 = seed ^ 0x9E37_79B9_7F4A_7C15
        var word: UInt64 = 0
        var n = 0
        var length: UInt64 = 0
        for byte in bytes {
            word |= UInt64(byte) << (8 * UInt64(n))
            n += 1
            length += 1
            if n == 8 {
                h = mix(h ^ word, 0xA076_1D64_78BD_642F)
                word = 0
                n = 0
            }
        }
        h = mix(h ^ word ^ (length << 56), 0xE703_7ED1_A0B4_28DB)
        return mix(h, 0x8EBC_6AF0_9C88_C6E3) ^ length
    }

    /// A 128-bit digest (two independent seeds), used to recognise a duplicate event.
    public static func digest128(_ bytes: [UInt8]) -> Digest128 {
        Digest128(high: hash64(bytes, seed: 0x1234_5678), low: hash64(bytes, seed: 0xDEAD_BEEF_CAFE))
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
