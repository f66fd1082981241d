#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// An exact, order-independent sum of doubles, with retraction.
///
/// Metrics must not depend on arrival order, and retracting a record's old amount must
/// leave no rounding residue. Each double is held as a 128-bit fixed-point integer with
/// 64 fraction bits: every double from 2^-11 to 2^63 converts exactly, so sums and
/// retractions are exact integer arithmetic and the result is rounded once, when read.
public struct ExactSum: Sendable, Equatable {
    public private(set) var raw: Int128 = 0
    /// Amounts of 2^52 and more (absurd for money, but valid input) do not fit the fixed
    /// point; they are summed as plain doubles here, so they can never overflow.
    public private(set) var huge: Double = 0

    public init() {}

    static let hugeLimit = 0x1p52

    /// `value × 2^64` as an integer, from the double's bits (exact, truncating below 2^-64).
    @inline(__always)
    static func fixed(_ value: Double) -> Int128 {
        let bits = value.bitPattern
        let exponent = Int((bits >> 52) & 0x7FF)
        if exponent == 0 { return 0 }  // zero or subnormal: below 2^-64
        let mantissa = Int128(bits & 0x000F_FFFF_FFFF_FFFF | 0x0010_0000_0000_0000)
        let shift = exponent - 1075 + 64  // value = mantissa × 2^(exponent − 1075)
        let magnitude = shift >= 0 ? mantissa << shift : (shift > -64 ? mantissa >> -shift : 0)
        return bits >> 63 == 0 ? magnitude : -magnitude
    }

    public mutating func add(_ value: Double, times sign: Int) {
        if abs(value) >= ExactSum.hugeLimit {
            huge += sign > 0 ? value : -value
        } else if sign > 0 {
            raw += ExactSum.fixed(value)
        } else {
            raw -= ExactSum.fixed(value)
        }
    }

    public var value: Double { Double(raw) * 0x1p-64 + huge }

    /// `self − other` rounded once (when no huge amounts are involved).
    public func difference(_ other: ExactSum) -> Double { Double(raw - other.raw) * 0x1p-64 + (huge - other.huge) }
}

/// A mergeable, retractable quantile sketch with bounded relative error.
///
/// Values fall in logarithmic buckets of ratio γ = (1+α)/(1−α); a bucket is reported by
/// a representative within α of every value in it, so a nearest-rank percentile is
/// within α (0.4%) of the exact one — inside the spec's 1%. Zero has its own bucket
/// and is reported exactly.
public struct LogSketch: Sendable, Equatable {
    static let alpha = 0.004
    static let gamma = (1 + alpha) / (1 - alpha)
    static let logGamma = (2 * alpha / (1 - alpha)).ln1p

    private(set) var zeroCount: Int32 = 0
    /// Sorted by bucket index.
    private(set) var buckets: [(index: Int32, count: Int32)] = []

    public init() {}

    public static func == (a: LogSketch, b: LogSketch) -> Bool {
        a.zeroCount == b.zeroCount && a.buckets.elementsEqual(b.buckets, by: { $0 == $1 })
    }

    public var count: Int { Int(zeroCount) + buckets.reduce(0) { $0 + Int($1.count) } }

    public mutating func add(_ value: Double, times sign: Int32) {
        if value <= 0 {
            zeroCount += sign
            return
        }
        let index = Int32((log(value) / LogSketch.logGamma).rounded(.up))
        var lo = 0
        var hi = buckets.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if buckets[mid].index < index { lo = mid + 1 } else { hi = mid }
        }
        if lo < buckets.count && buckets[lo].index == index {
            buckets[lo].count += sign
            if buckets[lo].count == 0 { buckets.remove(at: lo) }
        } else {
            precondition(sign > 0, "retracting a value the sketch does not hold")
            buckets.insert((index, sign), at: lo)
        }
    }

    /// Nearest-rank percentile (`percent` in 1…100): the smallest value with at least
    /// ⌈percent·n/100⌉ values at or below it; `nil` when empty.
    public func percentile(_ percent: Int) -> Double? {
        let n = count
        guard n > 0 else { return nil }
        let rank = max(1, (percent * n + 99) / 100)
        var seen = Int(zeroCount)
        if seen >= rank { return 0 }
        for bucket in buckets {
            seen += Int(bucket.count)
            if seen >= rank {
                return 2 * pow(LogSketch.gamma, Double(bucket.index)) / (LogSketch.gamma + 1)
            }
        }
        return nil
    }
}

extension Double {
    fileprivate var ln1p: Double { log1p(self) }
}
