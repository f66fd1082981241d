import DealstreamTestSupport
import Testing

@testable import PipelineMetrics

struct AggregateTests {
    @Test func int128ToDoubleWithoutTheGenericConversionRoundsTheSame() {
        var values: [Int128] = [
            0, 1, -1, Int128(Int64.max), Int128(Int64.min), Int128(Int64.max) + 1, Int128(Int64.min) - 1,
        ]
        values += [Int128.max, Int128.min, (1 << 70) + 12_345, -(1 << 90) - 7, 86_400_000_000_000 * 3_650_000]
        var x: UInt64 = 0x9E37_79B9_7F4A_7C15
        for _ in 0..<2_000 {
            x = x &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            values.append(Int128(Int64(bitPattern: x)) << Int(x % 64) | Int128(x >> 7))
        }
        for v in values { #expect(Double(nearest: v) == Double(v), "\(v)") }
    }

    @Test func exactSumRetractsWithoutResidue() {
        var s = ExactSum()
        s.add(1e6, times: 1)
        s.add(0.1, times: 1)
        s.add(1e6, times: -1)
        #expect(s.value == 0.1)
        var t = ExactSum()
        for x in [0.1, 0.2, 0.3, 1e9, 12000.5 * 1.08] { t.add(x, times: 1) }
        var u = ExactSum()
        for x in [12000.5 * 1.08, 1e9, 0.3, 0.2, 0.1] { u.add(x, times: 1) }
        #expect(t == u)
        #expect(t.value == 0.1 + 0.2 + 0.3 + 1e9 + 12000.5 * 1.08 || abs(t.value - 1_000_012_961.14) < 1e-6)
    }

    @Test func sketchPercentilesAreWithinOnePercentOfNearestRank() {
        var rng = SplitMix64(state: 99)
        var values: [Double] = []
        var sketch = LogSketch()
        for _ in 0..<5000 {
            let v = Double(Int.random(in: 0...1_000_000, using: &rng)) / 13
            values.append(v)
            sketch.add(v, times: 1)
        }
        // retract a third of them
        for v in values.prefix(1600) { sketch.add(v, times: -1) }
        let kept = values.dropFirst(1600).sorted()
        for q in [50, 90] {
            let exact = kept[max(1, (q * kept.count + 99) / 100) - 1]
            let approx = sketch.percentile(q)!
            #expect(abs(approx - exact) <= 0.01 * exact, "p\(q): \(approx) vs \(exact)")
        }
        var zeros = LogSketch()
        zeros.add(0, times: 1)
        zeros.add(0, times: 1)
        zeros.add(5, times: 1)
        #expect(zeros.percentile(50) == 0)
        #expect(LogSketch().percentile(50) == nil)
    }
}

struct ExactSumConversionTests {
    @Test func fixedPointMatchesTheGenericConversion() {
        var rng = SplitMix64(state: 3)
        for _ in 0..<10_000 {
            let v =
                Double(Int.random(in: 0...Int.max, using: &rng)) / Double(Int.random(in: 1...1_000_000, using: &rng))
                / 1e6
            guard v < ExactSum.hugeLimit else { continue }
            #expect(ExactSum.fixed(v) == Int128(v * 0x1p64), "\(v)")
            #expect(ExactSum.fixed(-v) == -Int128(v * 0x1p64), "\(v)")
        }
        #expect(ExactSum.fixed(0) == 0)
        #expect(ExactSum.fixed(1) == Int128(1) << 64)
        #expect(ExactSum.fixed(0x1p-70) == 0)
    }

    @Test func hugeAmountsNeitherTrapNorVanish() {
        var s = ExactSum()
        s.add(1e300, times: 1)
        s.add(12.5, times: 1)
        #expect(s.value == 1e300)
        s.add(1e300, times: -1)
        #expect(s.value == 12.5)
    }
}
