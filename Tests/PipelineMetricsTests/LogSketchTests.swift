import DealstreamTestSupport
import Foundation
import Testing

@testable import PipelineMetrics

/// The sketch as it was before its counts became dense: a sorted array of buckets with a
/// binary search and `Array.insert`. The reference the dense sketch must agree with.
private struct SortedArraySketch {
    var zeroCount: Int32 = 0
    var buckets: [(index: Int32, count: Int32)] = []

    var count: Int { Int(zeroCount) + buckets.reduce(0) { $0 + Int($1.count) } }

    mutating func add(_ value: Double, times sign: Int32) {
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

    func percentile(_ percent: Int) -> Double? {
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

struct LogSketchTests {
    /// A value of one of the shapes the sketch meets: zero, a narrow band (few buckets),
    /// amounts over three decades (enough of them for dense counts), and for shape 2 now and
    /// then one so far off that the counts turn back into a list. Shape 1 drifts downwards
    /// over the run, so the dense counts grow at the front and thin out at the back.
    private static func value(_ shape: Int, step: Int, using rng: inout SplitMix64) -> Double {
        switch Int.random(in: 0..<100, using: &rng) {
        case 0..<6: return 0
        case 6..<8 where shape == 2: return Bool.random(using: &rng) ? 1e-200 : 1e200
        case 8..<30: return 1000 + Double(Int.random(in: 0...40, using: &rng))
        default:
            let top = shape == 1 ? 3 - 6 * Double(step) / 4000 : 3
            return pow(10, Double.random(in: (top - 3)...top, using: &rng)) * Double.random(in: 1...1.1, using: &rng)
        }
    }

    @Test(arguments: [(UInt64(1), 0), (2, 0), (3, 1), (4, 1), (5, 2), (6, 2)])
    func sameResultsAsTheSortedArrayReference(seed: UInt64, shape: Int) {
        var rng = SplitMix64(state: seed)
        var sketch = LogSketch()
        var reference = SortedArraySketch()
        var values: [Double] = []
        var wasDense = false
        for step in 0..<4000 {
            // Add more than retract until the middle, then drain most of it.
            let retract = !values.isEmpty && Double.random(in: 0..<1, using: &rng) < (step < 2500 ? 0.3 : 0.8)
            if retract {
                let v = values.remove(at: Int.random(in: 0..<values.count, using: &rng))
                sketch.add(v, times: -1)
                reference.add(v, times: -1)
            } else {
                let v = LogSketchTests.value(shape, step: step, using: &rng)
                values.append(v)
                sketch.add(v, times: 1)
                reference.add(v, times: 1)
            }
            wasDense = wasDense || sketch.isDense
            guard step % 7 == 0 || step == 3999 else { continue }
            #expect(sketch.count == reference.count)
            #expect(sketch.buckets.map(\.index) == reference.buckets.map(\.index), "step \(step)")
            #expect(sketch.buckets.map(\.count) == reference.buckets.map(\.count), "step \(step)")
            for p in [1, 10, 25, 50, 75, 90, 99, 100, Int.random(in: 1...100, using: &rng)] {
                #expect(sketch.percentile(p) == reference.percentile(p), "seed \(seed) step \(step) p\(p)")
            }
        }
        // The run went through the dense counts (for shape 2 the far-off values may keep
        // it a sorted list, which is the other path).
        #expect(wasDense || shape == 2)
        // Drained to nothing, it is an empty sketch again.
        for v in values {
            sketch.add(v, times: -1)
            reference.add(v, times: -1)
        }
        #expect(sketch == LogSketch())
        #expect(!sketch.isDense)
        #expect(sketch.percentile(50) == nil && reference.percentile(50) == nil)
    }

    @Test func farOffValuesKeepASortedListAndTheSameAnswers() {
        var sketch = LogSketch()
        var reference = SortedArraySketch()
        let values = (1...100).map { Double($0) * 10 } + [1e-250, 1e250] + (1...50).map { Double($0) * 1e5 }
        for v in values {
            sketch.add(v, times: 1)
            reference.add(v, times: 1)
        }
        #expect(!sketch.isDense)
        #expect(sketch.buckets.map(\.index) == reference.buckets.map(\.index))
        for p in 1...100 { #expect(sketch.percentile(p) == reference.percentile(p)) }
        // Closely spread values make it dense; one far-off value makes it a list again.
        var near = LogSketch()
        var nearReference = SortedArraySketch()
        for v in (1...300).map({ 1000 + Double($0) * 10 }) {
            near.add(v, times: 1)
            nearReference.add(v, times: 1)
        }
        #expect(near.isDense)
        near.add(1e-250, times: 1)
        nearReference.add(1e-250, times: 1)
        #expect(!near.isDense)
        for p in 1...100 { #expect(near.percentile(p) == nearReference.percentile(p)) }
    }

    @Test func equalityDependsOnlyOnTheHeldValues() {
        // Through the dense counts: 200 values, then 140 of them retracted (still dense).
        var dense = LogSketch()
        let amounts = (1...200).map { Double($0) * 137.5 }
        for v in amounts { dense.add(v, times: 1) }
        #expect(dense.isDense)
        for v in amounts.dropFirst(60) { dense.add(v, times: -1) }
        #expect(dense.isDense)
        dense.add(0, times: 1)
        // The same sixty and a zero, added in another order: too spread out for dense counts.
        var sparse = LogSketch()
        sparse.add(0, times: 1)
        var rng = SplitMix64(state: 5)
        for v in amounts.prefix(60).shuffled(using: &rng) { sparse.add(v, times: 1) }
        #expect(!sparse.isDense)
        #expect(dense == sparse)
        #expect(dense.count == 61)
        // Retracting further turns the dense counts back into a list, equal all along.
        var shrunk = dense
        var list = sparse
        for v in amounts.prefix(55) {
            shrunk.add(v, times: -1)
            list.add(v, times: -1)
            #expect(shrunk == list)
        }
        #expect(!shrunk.isDense)
        for p in [1, 50, 90, 100] { #expect(dense.percentile(p) == sparse.percentile(p)) }
        var other = sparse
        other.add(amounts[5], times: 1)
        #expect(other != dense)
        var zeros = sparse
        zeros.add(0, times: 1)
        #expect(zeros != dense)
    }

    /// 100 values in 100 buckets: dense counts over 100…1090.
    static func denseSketch() -> LogSketch {
        var s = LogSketch()
        for i in 0..<100 { s.add(100 + Double(i) * 10, times: 1) }
        return s
    }

    @Test func retractingAValueNeverHeldTraps() async {
        #expect(LogSketchTests.denseSketch().isDense)
        await #expect(processExitsWith: .failure) {
            var s = LogSketch()
            s.add(5, times: -1)
        }
        await #expect(processExitsWith: .failure) {
            var s = LogSketch()
            s.add(5, times: 1)
            s.add(5, times: -1)
            s.add(5, times: -1)
        }
        // Dense: a bucket inside the counts that holds nothing (100.5 is not in 100's
        // bucket), and one outside them.
        await #expect(processExitsWith: .failure) {
            var s = LogSketchTests.denseSketch()
            s.add(100.5, times: 1)
            s.add(100.5, times: -1)
            s.add(100.5, times: -1)
        }
        await #expect(processExitsWith: .failure) {
            var s = LogSketchTests.denseSketch()
            s.add(1e6, times: -1)
        }
        // Allowed: retracting what is held.
        var s = LogSketchTests.denseSketch()
        s.add(100.5, times: 1)
        s.add(100.5, times: -1)
        for i in 0..<100 { s.add(100 + Double(i) * 10, times: -1) }
        #expect(s == LogSketch())
        #expect(!s.isDense)
    }
}
