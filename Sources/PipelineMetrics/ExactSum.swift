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

    public var value: Double { Double(nearest: raw) * 0x1p-64 + huge }

    /// `self − other` rounded once (when no huge amounts are involved).
    public func difference(_ other: ExactSum) -> Double {
        Double(nearest: raw - other.raw) * 0x1p-64 + (huge - other.huge)
    }
}

extension Double {
    /// `Double(value)`, the same rounding (to nearest, ties to even), without the standard
    /// library's unspecialized generic conversion from `Int128` (about 0.8 µs a call,
    /// measured; one per deal for the sales-cycle duration was a fifth of a worker's
    /// rebuild, and every `ExactSum` read is one). A value that fits 64 bits converts
    /// directly; a larger one keeps its top 64 bits, with one sticky bit for anything
    /// shifted out (11 bits below the 53 that are kept, so the rounding is the same), and
    /// is scaled back exactly.
    @inline(__always)
    init(nearest value: Int128) {
        let low = Int64(truncatingIfNeeded: value)
        if Int128(low) == value {
            self = Double(low)
            return
        }
        let magnitude = value.magnitude
        let shift = max(0, 64 - magnitude.leadingZeroBitCount)
        var top = UInt64(truncatingIfNeeded: magnitude >> shift)
        if shift > 0 && magnitude & ((1 << shift) - 1) != 0 { top |= 1 }
        let scaled = Double(top) * Double(sign: .plus, exponent: shift, significand: 1)
        self = value < 0 ? -scaled : scaled
    }
}

/// A mergeable, retractable quantile sketch with bounded relative error.
///
/// Values fall in logarithmic buckets of ratio γ = (1+α)/(1−α); a bucket is reported by
/// a representative within α of every value in it, so a nearest-rank percentile is
/// within α (0.4%) of the exact one — inside the spec's 1%. Zero has its own bucket
/// and is reported exactly.
///
/// Storage: a sorted list of held buckets (8 bytes each) while that is small or thinly
/// spread, else a dense array of counts indexed by bucket index minus `offset` (4 bytes per
/// index spanned), grown at either end with slack, where an update is O(1) however many
/// buckets are held. A sketch turns dense once it holds more than `sparseLimit` buckets
/// and the counts would take at most twice the list's bytes (a bucket held for at least
/// every fourth index spanned); it turns back when they would take more than eight times
/// (fewer than one in sixteen). Why not always dense: most cells hold a handful of deals
/// spread over hundreds of buckets, and dense counts for them cost far more than the list
/// (dense past 32 buckets doubled the revenue worker's PSS at 100 k deals). A sorted
/// insert thus moves at most 2 bytes per index spanned, and only in thinly spread
/// sketches (or ones spanning more than `maxDenseSpan` indices: values ~10^28 apart,
/// which stay a list). Which storage a sketch uses is invisible: percentiles, `count` and `==`
/// depend only on the held buckets.
public struct LogSketch: Sendable, Equatable {
    static let alpha = 0.004
    static let gamma = (1 + alpha) / (1 - alpha)
    static let logGamma = (2 * alpha / (1 - alpha)).ln1p
    /// Held buckets always kept as a sorted list.
    static let sparseLimit = 32
    /// The most bucket indices a dense sketch spans (64 KiB of counts).
    static let maxDenseSpan = 16_384

    struct Bucket: Equatable, Sendable {
        var index: Int32
        var count: Int32
    }

    private(set) var zeroCount: Int32 = 0
    /// While `dense` is empty: the held buckets, sorted by index.
    private var sparse: [Bucket] = []
    /// Otherwise: the count of bucket `offset + i` at `dense[i]` (0: not held).
    private var dense: [Int32] = []
    private var offset: Int32 = 0
    /// Buckets with a non-zero count, and the sum of their counts.
    private var held = 0
    private var positiveCount = 0

    public init() {}

    public static func == (a: LogSketch, b: LogSketch) -> Bool {
        a.zeroCount == b.zeroCount && a.heldBuckets.elementsEqual(b.heldBuckets)
    }

    public var count: Int { Int(zeroCount) + positiveCount }

    /// Whether the counts are dense (for tests; not part of the sketch's value).
    var isDense: Bool { !dense.isEmpty }

    /// The buckets with a non-zero count, by increasing index.
    var buckets: [Bucket] { Array(heldBuckets) }

    public mutating func add(_ value: Double, times sign: Int32) {
        if value <= 0 {
            zeroCount += sign
            return
        }
        let index = Int32((log(value) / LogSketch.logGamma).rounded(.up))
        if dense.isEmpty {
            addSparse(index, times: sign)
        } else {
            addDense(index, times: sign)
        }
    }

    private mutating func addSparse(_ index: Int32, times sign: Int32) {
        var lo = 0
        var hi = sparse.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if sparse[mid].index < index { lo = mid + 1 } else { hi = mid }
        }
        if lo < sparse.count && sparse[lo].index == index {
            sparse[lo].count += sign
            if sparse[lo].count == 0 {
                sparse.remove(at: lo)
                held -= 1
            }
        } else {
            precondition(sign > 0, "retracting a value the sketch does not hold")
            if held >= LogSketch.sparseLimit {
                let low = min(Int(sparse[0].index), Int(index))
                let high = max(Int(sparse[sparse.count - 1].index), Int(index))
                let span = high - low + 1
                if span <= LogSketch.maxDenseSpan && span <= 4 * (held + 1) {
                    makeDense(from: Int32(low), to: Int32(high))
                    addDense(index, times: sign)
                    return
                }
            }
            sparse.insert(Bucket(index: index, count: sign), at: lo)
            held += 1
        }
        positiveCount += Int(sign)
    }

    private mutating func addDense(_ index: Int32, times sign: Int32) {
        var i = Int(index) - Int(offset)
        if i < 0 || i >= dense.count {
            precondition(sign > 0, "retracting a value the sketch does not hold")
            guard grow(toInclude: index) else {
                makeSparse()
                addSparse(index, times: sign)
                return
            }
            i = Int(index) - Int(offset)
        }
        let old = dense[i]
        if old == 0 { precondition(sign > 0, "retracting a value the sketch does not hold") }
        let new = old + sign
        dense[i] = new
        if old == 0 {
            held += 1
        } else if new == 0 {
            held -= 1
        }
        positiveCount += Int(sign)
        if new == 0 && 16 * held < dense.count { makeSparse() }
    }

    /// The held buckets as dense counts over `low...high`.
    private mutating func makeDense(from low: Int32, to high: Int32) {
        var counts = [Int32](repeating: 0, count: Int(high) - Int(low) + 1)
        for bucket in sparse { counts[Int(bucket.index) - Int(low)] = bucket.count }
        dense = counts
        offset = low
        sparse = []
    }

    private mutating func makeSparse() {
        sparse = Array(heldBuckets)
        dense = []
        offset = 0
    }

    /// Extends the dense counts to cover `index`, with slack beyond it (an eighth of the
    /// current size, so growing is amortized O(1)); false when that would span more than
    /// `maxDenseSpan` indices or sixteen per held bucket.
    private mutating func grow(toInclude index: Int32) -> Bool {
        let low = min(Int(offset), Int(index))
        let high = max(Int(offset) + dense.count - 1, Int(index))
        let span = high - low + 1
        guard span <= LogSketch.maxDenseSpan && span <= 16 * (held + 1) else { return false }
        let slack = min(dense.count / 8, LogSketch.maxDenseSpan - span, 16 * (held + 1) - span)
        if Int(index) < Int(offset) {
            let added = Int(offset) - low + slack
            dense.insert(contentsOf: repeatElement(0, count: added), at: 0)
            offset = Int32(Int(offset) - added)
        } else {
            dense.append(contentsOf: repeatElement(0, count: high - (Int(offset) + dense.count - 1) + slack))
        }
        return true
    }

    /// Nearest-rank percentile (`percent` in 1…100): the smallest value with at least
    /// ⌈percent·n/100⌉ values at or below it; `nil` when empty.
    public func percentile(_ percent: Int) -> Double? {
        let n = count
        guard n > 0 else { return nil }
        let rank = max(1, (percent * n + 99) / 100)
        var seen = Int(zeroCount)
        if seen >= rank { return 0 }
        for bucket in heldBuckets {
            seen += Int(bucket.count)
            if seen >= rank {
                return 2 * pow(LogSketch.gamma, Double(bucket.index)) / (LogSketch.gamma + 1)
            }
        }
        return nil
    }

    var heldBuckets: HeldBuckets { HeldBuckets(sketch: self) }

    /// The buckets with a non-zero count, by increasing index, from either storage.
    struct HeldBuckets: Sequence, IteratorProtocol {
        let sketch: LogSketch
        var position = 0

        mutating func next() -> Bucket? {
            if sketch.dense.isEmpty {
                guard position < sketch.sparse.count else { return nil }
                position += 1
                return sketch.sparse[position - 1]
            }
            while position < sketch.dense.count {
                let count = sketch.dense[position]
                position += 1
                if count != 0 { return Bucket(index: sketch.offset + Int32(position - 1), count: count) }
            }
            return nil
        }
    }
}

extension Double {
    fileprivate var ln1p: Double { log1p(self) }
}
